"""What ``train`` and ``compare`` do once their arguments are parsed: validate the whole command (settings,
model, data, output folder) touching nothing, then build the source, remove the earlier results (only files
listed in the folder's manifest, with ``--overwrite``), train, and report. Ctrl-C and SIGTERM leave a
consistent run that ``--resume`` continues; every bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from minimal_rl_app.comparison import COMPARE_FILES
from minimal_rl_app.inputs import UsageError
from minimal_rl_app.main_job import RUN_FILES, plot_partial, resume_point, run_name, settings_from, sigterm_as_interrupt
from minimal_rl_app.outputs import OutputDir
from minimal_rl_app.sources import check_source, load_source


def setup_environment(threads: int, report_to: list[str] | None = None) -> None:
    """Offline telemetry, quiet logs, and the CPU thread count that is fastest for tiny models."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if not {"wandb", "all"} & set(report_to or []):
        os.environ.setdefault("WANDB_MODE", "disabled")
    import torch

    torch.set_num_threads(threads)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _check_hub_model(model: str | None) -> None:
    """A ``--model`` transformers cannot load (no such hub id, offline without a cache) is a one-line error."""
    if model is None:
        return
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--model {model}: cannot load it ({str(exc).strip().splitlines()[0][:200]})") from None


def _check_resume(args: argparse.Namespace, checked: Any, runs: list[tuple[str, int, Path]]) -> None:
    """``--resume`` needs the settings the interrupted runs were started with."""
    from dataclasses import asdict

    for name, seed, run_dir in runs:
        try:
            earlier = json.loads((run_dir / "metrics.json").read_text()).get("settings")
        except (OSError, ValueError):
            continue
        run_args = copy.copy(args)
        run_args.seed = seed
        now = asdict(settings_from(name, run_args, checked))
        changed = sorted(k for k, v in now.items() if isinstance(earlier, dict) and earlier.get(k) != v and k != "save_every")
        if changed:
            raise UsageError(f"--resume: {run_dir} was trained with other settings "
                             f"({', '.join(f'{k}={earlier.get(k)}' for k in changed)}); repeat the original command")


def _validate(args: argparse.Namespace, names: list[str], planned: list[str], root: Path,
              resume_runs: list[tuple[str, int, Path]] = ()) -> tuple[OutputDir, Any]:
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --output-dir, --overwrite replaces it: choose one")
    for name in names:
        try:
            settings_from(name, args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    outputs = OutputDir(root)
    outputs.check(planned, args.overwrite, args.resume)
    checked = check_source(args)
    if args.resume:
        _check_resume(args, checked, list(resume_runs))
    setup_environment(args.threads, args.report_to)
    _check_hub_model(args.model)
    return outputs, checked


def _load(args: argparse.Namespace, checked: Any, command: str):
    try:
        return load_source(args, checked)
    except KeyboardInterrupt:
        print(f"\nminimal-rl {command}: interrupted while building the demo model; nothing was written to "
              "--output-dir and nothing cached (the next run builds it again)", file=sys.stderr)
        return None


def _interrupted(exc: BaseException) -> str:
    return "terminated (SIGTERM)" if "SIGTERM" in str(exc) else "interrupted"


def _start_fresh_or_resume(outputs: OutputDir, rel: str, resume: bool, log: Callable[[str], None]) -> str:
    """'resume', 'complete' or 'fresh' for the run in ``rel``; a run without a checkpoint starts again."""
    run_dir = outputs.root / rel if rel else outputs.root
    if not resume:
        return "fresh"
    try:
        status = json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        status = None
    if status == "complete":
        return "complete"
    if resume_point(run_dir) is not None:
        return "resume"
    if status is not None:
        log(f"{run_dir}: no checkpoint saved yet, starting this run again from step 0")
        outputs.clear([f"{rel}/{f}" if rel else f for f in RUN_FILES])
    return "fresh"


def train_command(args: argparse.Namespace, started: float) -> int:
    from minimal_rl_app.main_job import train_one

    name = run_name(args.algorithm, args.sample_filter)
    try:
        root = Path(args.output_dir or f"outputs/train-{name}").expanduser()
        outputs, checked = _validate(args, [name], list(RUN_FILES), root, [(name, args.seed, root)])
    except UsageError as exc:
        print(f"minimal-rl train: error: {exc}", file=sys.stderr)
        return 2
    out = outputs.root
    with sigterm_as_interrupt():
        source = _load(args, checked, "train")
        if source is None:
            return 130
        if args.overwrite:
            outputs.clear(RUN_FILES)
        state = _start_fresh_or_resume(outputs, "", args.resume, print)
        if state == "complete":
            print(f"{out}: this run is already complete; nothing to resume")
            return 0
        try:
            payload = train_one(name, args, source, outputs)
        except KeyboardInterrupt as exc:
            plot_partial(out, name)
            print(f"\n{_interrupted(exc)}: partial metrics and figure in {out}; continue with the same command "
                  "and --resume", file=sys.stderr)
            return 130
    from minimal_rl_app.run_log import write_json_atomic

    s = payload.get("summary", {})
    wall = time.perf_counter() - started
    payload["wall_seconds_total"] = round(wall, 1)
    write_json_atomic(out / "metrics.json", payload)
    print(
        f"\n{name}: held-out accuracy {s.get('heldout_accuracy_start', float('nan')):.3f} -> "
        f"{s.get('heldout_accuracy_end', float('nan')):.3f} after {args.steps} steps; "
        f"KL to initial model {s.get('heldout_kl_end') or 0.0:.4f}; entropy "
        f"{s.get('entropy_start', float('nan')):.3f} -> {s.get('entropy_end', float('nan')):.3f}; "
        f"{s.get('seconds_per_step_median', float('nan')):.2f} s/step (median); wall time "
        f"{f'{wall:.0f} s' if wall < 120 else f'{wall / 60:.1f} min'} (start-up and warm-start included)"
    )
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.png'} and {out / 'model'}/")
    return 0


def run_folders(algorithms: list[str], seeds: list[int]) -> dict[tuple[str, int], str]:
    """(algorithm, seed) -> folder relative to the compare folder: ``algo`` or, with several seeds, ``algo/seed-N``."""
    return {(a, s): a if len(seeds) == 1 else f"{a}/seed-{s}" for a in algorithms for s in seeds}


def compare_command(args: argparse.Namespace, started: float) -> int:
    from minimal_rl_app.comparison import render, write_report
    from minimal_rl_app.main_job import train_one

    algorithms = list(dict.fromkeys(args.algorithms))
    seeds = list(dict.fromkeys(args.seeds or [args.seed]))
    root = Path(args.output_dir or "outputs/compare").expanduser()
    folders = run_folders(algorithms, seeds)
    if args.render_only:
        try:
            outputs = OutputDir(root)
            outputs.check(COMPARE_FILES, overwrite=True)
        except UsageError as exc:
            print(f"minimal-rl compare: error: {exc}", file=sys.stderr)
            return 2
        return render(root, algorithms, seeds, folders)
    planned = list(COMPARE_FILES) + [f"{rel}/{f}" for rel in folders.values() for f in RUN_FILES]
    try:
        outputs, checked = _validate(args, algorithms, planned, root, [(a, s, root / rel) for (a, s), rel in folders.items()])
    except UsageError as exc:
        print(f"minimal-rl compare: error: {exc}", file=sys.stderr)
        return 2
    runs: dict[tuple[str, int], dict] = {}
    source = None
    with sigterm_as_interrupt():
        try:
            source = _load(args, checked, "compare")
            if source is None:
                return 130
            if args.overwrite:
                outputs.clear(planned)
            for i, ((algo, seed), rel) in enumerate(folders.items(), 1):
                state = _start_fresh_or_resume(outputs, rel, args.resume, print)
                if state == "complete":
                    runs[(algo, seed)] = json.loads((root / rel / "metrics.json").read_text())
                    print(f"=== [{i}/{len(folders)}] {algo} seed {seed}: already complete in {root / rel}")
                    continue
                print(f"\n=== [{i}/{len(folders)}] {algo}{f' seed {seed}' if len(seeds) > 1 else ''}: {args.steps} steps ===")
                run_args = copy.copy(args)
                run_args.seed = seed
                runs[(algo, seed)] = train_one(algo, run_args, source, outputs, rel)
        except KeyboardInterrupt as exc:
            if len(runs) < len(folders):
                partial = next(rel for key, rel in folders.items() if key not in runs)
                plot_partial(root / partial, partial)
            print(f"\n{_interrupted(exc)}: finished runs and the partial one are in {root}; continue with the "
                  "same command and --resume", file=sys.stderr)
            if not runs:
                return 130
    outputs.add(*COMPARE_FILES)
    write_report(runs, root, time.perf_counter() - started, source.header.get("model", "") if source else "")
    return 0 if len(runs) == len(folders) else 130


def eval_command(args: argparse.Namespace) -> int:
    """``minimal-rl eval``: every input checked (data, model, --output's folder) before generating anything."""
    from minimal_rl_app.evaluation import TransformersGenerator, VLLMGenerator, evaluate_benchmarks, results_table, vllm_usable
    from minimal_rl_app.inputs import check_model, check_writable_file, jsonl_files, read_problem_file
    from minimal_rl_app.templates import messages_for, recorded_template

    try:
        benchmarks = {}
        for f in jsonl_files(args.data):
            rows = read_problem_file(f)
            benchmarks[f.stem] = rows[: args.limit] if args.limit else rows
        if args.output:
            check_writable_file(Path(args.output), "--output")
        check_model(args.model)
        template = args.prompt_template
        if template == "auto":
            template = recorded_template(args.model) or "paper"
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        import transformers

        transformers.logging.set_verbosity_error()
        backend = args.backend
        if backend == "auto":
            backend = "vllm" if vllm_usable() else "transformers"
        elif backend == "vllm" and not vllm_usable():
            raise UsageError("--backend vllm needs vLLM installed and a GPU; use --backend transformers")
        kw = dict(messages=messages_for(template), max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
        try:
            if backend == "vllm":
                generator = VLLMGenerator(args.model, **kw)
            else:
                generator = TransformersGenerator(args.model, batch_size=args.batch_size, **kw)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--model {args.model}: cannot load it ({str(exc).strip().splitlines()[0][:200]})") from None
    except UsageError as exc:
        print(f"minimal-rl eval: error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    recorded = " (recorded with the model)" if args.prompt_template == "auto" and recorded_template(args.model) else ""
    print(f"evaluating {args.model} with {backend}: average@{args.k}, temperature {args.temperature}, "
          f"at most {args.max_new_tokens} new tokens, {template} prompt template{recorded}")
    try:
        results = evaluate_benchmarks(
            generator, benchmarks, k=args.k, workers=args.workers, timeout_s=args.timeout,
            progress=not args.no_progress, log=print,
        )
    except KeyboardInterrupt:
        print("\nminimal-rl eval: interrupted; nothing written", file=sys.stderr)
        return 130
    table = results_table(results)
    print("\n" + table + f"\n\n({time.perf_counter() - t0:.0f}s)")
    if args.output:
        payload = {
            "model": args.model, "k": args.k, "temperature": args.temperature, "max_new_tokens": args.max_new_tokens,
            "prompt_template": template, "backend": backend,
            "benchmarks": {r.name: {"problems": r.num_problems, "accuracy": r.accuracy, "timeouts": r.timeouts} for r in results},
            "mean_accuracy": sum(r.accuracy for r in results) / len(results),
        }
        Path(args.output).expanduser().write_text(json.dumps(payload, indent=1))
    return 0
