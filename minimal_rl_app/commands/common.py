"""What ``train`` and ``compare`` share: arguments, the model/data source, output folders, threads.

Heavy imports (transformers, trl, matplotlib) stay inside functions: the CLI builds its parser from
every subcommand module, and ``minimal-rl --help`` must stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Files and folders train/compare write; --overwrite removes only these (never a whole folder).
OWNED_NAMES = ("metrics.json", "metrics.png", "model", "trl", "heldout.jsonl", "compare.json", "compare.md", "compare.png")


class UsageError(Exception):
    """Bad arguments or inputs: printed as one line, exit status 2."""


def _number(parse: Callable[[str], float], ok: Callable[[float], bool], wanted: str) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text, then require ``ok`` of the value, else one clear line."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    return convert


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
positive_float = _number(float, lambda v: v > 0, "a positive number")
nonneg_float = _number(float, lambda v: v >= 0, "a number >= 0")


def trainable_algorithm(algorithm: str) -> str:
    """argparse type: an algorithm trl_ext can sample for (Reinforce-Ada's rows are refused, naming what is missing);
    unknown names are left to ``choices``."""
    from minimal_rl.table import check_host_sampling

    try:
        check_host_sampling(algorithm, "trl_ext")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return algorithm


def parse_run_name(name: str) -> tuple[str, str | None]:
    """``"grpo+drop_uniform"`` -> ("grpo", "drop_uniform"); ``"raft"`` -> ("raft", None). Also an argparse type."""
    from minimal_rl.table import ALGORITHMS, SAMPLE_FILTERS

    algorithm, _, sample_filter = name.partition("+")
    if algorithm not in ALGORITHMS:
        raise argparse.ArgumentTypeError(f"unknown algorithm {algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
    trainable_algorithm(algorithm)
    if sample_filter and sample_filter not in SAMPLE_FILTERS:
        raise argparse.ArgumentTypeError(
            f"unknown sample filter {sample_filter!r} in {name!r}; choose one of: {', '.join(SAMPLE_FILTERS)}"
        )
    return algorithm, sample_filter or None


def run_spec(text: str) -> str:
    """argparse type of ``compare --algorithms``: ``algorithm`` or ``algorithm+filter``."""
    parse_run_name(text)
    return text


def add_run_arguments(p: argparse.ArgumentParser, default_steps: int) -> None:
    """Arguments of one RL run (shared by train and compare)."""
    src = p.add_argument_group("model and data (default: the embedded demo, no download)")
    src.add_argument("--model", default=None, help="local folder or hub id of a causal LM (default: the embedded tiny Llama)")
    src.add_argument("--dataset", nargs="+", default=None, metavar="JSONL", help="training JSONL files with `problem` and `answer`")
    src.add_argument("--eval-data", nargs="+", default=None, metavar="JSONL", help="held-out JSONL (default: the demo's held-out split, or the last --eval-problems rows of --dataset)")
    src.add_argument("--prompt-template", choices=("auto", "paper", "plain"), default="auto", help="paper: the paper's system prompt and suffix; plain: the bare problem; auto: plain for the embedded model, paper otherwise")
    src.add_argument("--cache-dir", default=None, help="where the warm-started demo model is cached (default: $MINIMAL_RL_CACHE or ~/.cache/minimal-rl)")
    src.add_argument("--warmstart-target", type=float, default=0.30, help="sampled accuracy at which the demo warm-start stops (in 0.2-0.5)")
    # Test-only: cap the warm-start (0 = random weights) and shrink the task, so CI runs in seconds.
    src.add_argument("--warmstart-max-steps", type=int, default=None, help=argparse.SUPPRESS)
    src.add_argument("--tiny-model", action="store_true", help=argparse.SUPPRESS)

    rl = p.add_argument_group("RL settings")
    rl.add_argument("--steps", type=positive_int, default=default_steps, help=f"optimiser steps (default {default_steps})")
    rl.add_argument("--prompts-per-step", type=positive_int, default=32, help="prompts per rollout batch (default 32)")
    rl.add_argument("--mini-batches", type=positive_int, default=2, help="optimiser steps per rollout batch (default 2: the second is off-policy, so RAFT++'s ratio and clipping act; 1 makes RAFT++ identical to RAFT)")
    rl.add_argument("--num-generations", type=positive_int, default=8, help="samples per prompt (group size n)")
    rl.add_argument("--lr", type=positive_float, default=None, help="learning rate (default 1e-4 on the demo, where 3e-4 was unstable; 1e-6, the paper's, with --model)")
    rl.add_argument("--beta", type=nonneg_float, default=0.0, help="KL coefficient in the loss (paper: 0.001); >0 also logs TRL's per-step k3 KL")
    rl.add_argument("--max-completion-length", type=positive_int, default=None, help="new tokens per sample (default 16 on the demo, 1024 otherwise)")
    rl.add_argument("--eval-every", type=positive_int, default=25, help="held-out evaluation interval in steps")
    rl.add_argument("--eval-problems", type=positive_int, default=256)
    rl.add_argument("--eval-samples", type=positive_int, default=4, help="samples per held-out problem (temperature 1.0)")
    rl.add_argument("--seed", type=int, default=0)

    run = p.add_argument_group("run")
    run.add_argument("--output-dir", default=None, help="where metrics.json, the PNGs and the model go")
    run.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --output-dir")
    run.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (1 is fastest for the tiny model: measured 6x faster than 2 on 2 shared cores)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--use-vllm", action="store_true", help="generate rollouts with vLLM (TRL's colocate mode; GPU only)")
    run.add_argument("--log-every", type=positive_int, default=1, help="print a step line every N steps")


def setup_environment(threads: int) -> None:
    """Offline, quiet, and the CPU thread count that is fastest for tiny models."""
    for key, value in {
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "WANDB_MODE": "disabled",
    }.items():
        os.environ.setdefault(key, value)
    import torch

    torch.set_num_threads(threads)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def prepare_output_dir(path: str | Path, overwrite: bool) -> Path:
    """Create ``path``; refuse to touch a folder holding an earlier run unless ``overwrite``."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output-dir {out} exists and is not a folder")
    existing = [n for n in OWNED_NAMES if (out / n).exists()] if out.exists() else []
    sub_runs = [d.name for d in out.iterdir() if d.is_dir() and (d / "metrics.json").exists()] if out.exists() else []
    if (existing or sub_runs) and not overwrite:
        raise UsageError(
            f"--output-dir {out} already holds results ({', '.join((existing + sub_runs)[:4])}); "
            "pass --overwrite to replace them or choose another --output-dir"
        )
    for name in existing:
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    for name in sub_runs:
        for inner in OWNED_NAMES:
            target = out / name / inner
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_jsonl(paths: list[str]) -> list[dict]:
    """Rows with `problem` and `answer` from JSONL files (or every *.jsonl in a folder)."""
    files: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"data file not found: {path}")
    if not files:
        raise UsageError(f"no .jsonl files in {', '.join(paths)}")
    rows = []
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"{f}:{n}: not valid JSON ({exc})") from None
            if "problem" not in row or "answer" not in row:
                raise UsageError(f"{f}:{n}: needs `problem` and `answer` fields")
            rows.append({"problem": str(row["problem"]), "answer": str(row["answer"])})
    return rows


@dataclass
class RunSource:
    """What an RL run starts from: a model folder/id, training rows, held-out rows, the prompt format."""

    model_path: str
    train_rows: list[dict]
    heldout_rows: list[dict]
    messages: Callable[[str], list[dict[str, str]]]
    max_completion_length: int
    learning_rate: float
    header: dict = field(default_factory=dict)


def resolve_source(args: argparse.Namespace, log: Callable[[str], None] = print) -> RunSource:
    """The embedded demo (building/caching its warm-start) or ``--model`` with ``--dataset``."""
    from minimal_rl_app.demo.evaluate import MAX_NEW_TOKENS, demo_messages
    from minimal_rl.prompts import build_messages

    template = args.prompt_template
    if args.model is None:
        if args.dataset or args.eval_data:
            raise UsageError("--dataset / --eval-data need --model (the embedded model only knows the demo task)")
        from minimal_rl_app.demo.model import ModelConfig
        from minimal_rl_app.demo.task import TaskConfig
        from minimal_rl_app.demo.warmstart import WarmStartConfig, load_or_build

        if not 0.0 < args.warmstart_target < 1.0:
            raise UsageError(f"--warmstart-target must be in (0, 1), got {args.warmstart_target}")
        warm_kw: dict[str, Any] = {"target_accuracy": args.warmstart_target}
        if args.warmstart_max_steps is not None:
            warm_kw["max_steps"] = args.warmstart_max_steps
        model_cfg = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64) if args.tiny_model else ModelConfig()
        task = TaskConfig(num_heldout=64) if args.tiny_model else TaskConfig()
        bundle = load_or_build(
            args.cache_dir, task, model_cfg, WarmStartConfig(**warm_kw), progress=not args.no_progress, log=log
        )
        acc = bundle.warmstart_accuracy
        log(f"demo model: {bundle.path} (warm-start sampled accuracy {acc:.2f})")
        messages = build_messages if template == "paper" else demo_messages
        return RunSource(
            model_path=str(bundle.path),
            train_rows=[p.to_dict() for p in bundle.splits.train],
            heldout_rows=[p.to_dict() for p in bundle.splits.heldout],
            messages=messages,
            max_completion_length=args.max_completion_length or MAX_NEW_TOKENS,
            learning_rate=args.lr or 1e-4,
            header={"model": "embedded demo (tiny Llama, character tokenizer)", "model_path": str(bundle.path),
                    "task": bundle.manifest.get("task"), "warmstart": bundle.manifest.get("warmstart")},
        )
    messages = demo_messages if template == "plain" else build_messages
    if not args.dataset:
        raise UsageError("--model needs --dataset JSONL files (`problem`, `answer`) to train on")
    rows = read_jsonl(args.dataset)
    if args.eval_data:
        heldout = read_jsonl(args.eval_data)
    else:
        if len(rows) <= args.eval_problems:
            raise UsageError(f"--dataset has {len(rows)} rows: too few to hold out --eval-problems={args.eval_problems}")
        rows, heldout = rows[: -args.eval_problems], rows[-args.eval_problems :]
    return RunSource(
        model_path=args.model,
        train_rows=rows,
        heldout_rows=heldout,
        messages=messages,
        max_completion_length=args.max_completion_length or 1024,
        learning_rate=args.lr or 1e-6,
        header={"model": args.model, "dataset": args.dataset, "eval_data": args.eval_data},
    )


def train_one(name: str, args: argparse.Namespace, source: RunSource, out: Path, log: Callable[[str], None] = print) -> dict:
    """One RL run (``algorithm`` or ``algorithm+filter``) with the TRL trainers; writes metrics.json, metrics.png
    and model/ into ``out``."""
    from minimal_rl_app.demo.evaluate import evaluate_heldout
    from minimal_rl_app.demo.task import Problem
    from minimal_rl_app.plots import plot_run
    from minimal_rl_app.main_job import TrainSettings, run_training

    try:
        algorithm, sample_filter = parse_run_name(name)
        # The arguments add_run_arguments defines under the settings' own names, plus what the source decides.
        same_name = ("steps", "prompts_per_step", "num_generations", "mini_batches", "beta", "eval_every",
                     "eval_problems", "eval_samples", "seed")
        settings = TrainSettings(
            algorithm=algorithm, sample_filter=sample_filter, learning_rate=source.learning_rate,
            max_completion_length=source.max_completion_length, **{key: getattr(args, key) for key in same_name},
        )
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise UsageError(str(exc)) from None
    heldout = [Problem(r["problem"], r["answer"]) for r in source.heldout_rows[: args.eval_problems]]

    def evaluate_factory(reference: Any) -> Callable[[Any, int], dict]:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source.model_path)

        def evaluate(model: Any, step: int) -> dict:
            # Same seed at every evaluation: differences between evaluations are the model's, not the dice's.
            return evaluate_heldout(
                model, tokenizer, heldout, samples_per_problem=args.eval_samples, seed=args.seed + 10_000,
                reference_model=reference, max_new_tokens=source.max_completion_length, messages=source.messages,
            )

        return evaluate

    out.mkdir(parents=True, exist_ok=True)
    # The held-out problems as JSONL, so `minimal-rl eval --data <out>/heldout.jsonl` can score the result.
    (out / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in source.heldout_rows))
    payload = run_training(
        settings, source.model_path, source.train_rows, evaluate_factory, out, source.header,
        progress=not args.no_progress, log=log, conversational_prompt=source.messages, log_every=args.log_every,
        extra_config={"use_vllm": True, "vllm_mode": "colocate"} if args.use_vllm else None,
    )
    plot_run(payload, out / "metrics.png", title=f"{name} on {source.header.get('model', '')}")
    return payload


def plot_partial(out: Path, algorithm: str) -> None:
    """After Ctrl-C: plot what the (atomically written) metrics file holds."""
    from minimal_rl_app.plots import plot_run

    path = out / "metrics.json"
    if path.exists():
        try:
            plot_run(json.loads(path.read_text()), out / "metrics.png", title=f"{algorithm} (interrupted)")
        except Exception:  # noqa: BLE001 - plotting a partial run is best effort
            pass
