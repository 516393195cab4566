"""``minimal-rl eval``: average@k of a local or hub model on JSONL benchmarks (`problem`, `answer`).

The paper's protocol (Sec. 5.1): k = 16 samples per problem at temperature 1.0, its prompt template
through the model's chat template, Math-Verify scoring; the table reports each benchmark and their mean.
vLLM is used when it is installed and a GPU is present, ``transformers.generate`` otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from minimal_rl_app.commands.common import UsageError, nonneg_float, positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="local folder (e.g. outputs/train-raft_pp/model) or hub id")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="JSONL files or folders of *.jsonl (one benchmark per file)")
    p.add_argument("--k", type=positive_int, default=16, help="samples per problem (average@k; default 16)")
    p.add_argument("--max-new-tokens", type=positive_int, default=4096, help="default 4096 (the paper's limit)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N problems of each benchmark")
    p.add_argument("--temperature", type=nonneg_float, default=1.0)
    p.add_argument("--prompt-template", choices=("paper", "plain"), default="paper", help="paper: the paper's system prompt and suffix (default); plain: the bare problem")
    p.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sequences per generate call (transformers backend)")
    p.add_argument("--workers", type=positive_int, default=2, help="scoring processes")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds of Math-Verify per completion before it counts as wrong")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--output", default=None, help="also write the results as JSON here")
    p.add_argument("--no-progress", action="store_true")


def load_benchmarks(paths: list[str], limit: int | None) -> dict[str, list[dict]]:
    """name (file stem) -> rows; a folder contributes every *.jsonl in it."""
    from minimal_rl_app.commands.common import read_jsonl

    files: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise UsageError(f"no .jsonl files in {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"--data: {path} does not exist")
    out: dict[str, list[dict]] = {}
    for f in files:
        rows = read_jsonl([str(f)])
        if not rows:
            raise UsageError(f"{f} has no rows")
        out[f.stem] = rows[:limit] if limit else rows
    return out


def run(args: argparse.Namespace) -> int:
    from minimal_rl_app.demo.evaluate import demo_messages
    from minimal_rl_app.evaluation import TransformersGenerator, VLLMGenerator, evaluate_benchmarks, results_table, vllm_usable
    from minimal_rl.prompts import build_messages

    try:
        benchmarks = load_benchmarks(args.data, args.limit)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        import transformers

        transformers.logging.set_verbosity_error()
        messages = build_messages if args.prompt_template == "paper" else demo_messages
        backend = args.backend
        if backend == "auto":
            backend = "vllm" if vllm_usable() else "transformers"
        elif backend == "vllm" and not vllm_usable():
            raise UsageError("--backend vllm needs vLLM installed and a GPU; use --backend transformers")
        kw = dict(messages=messages, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
        try:
            if backend == "vllm":
                generator = VLLMGenerator(args.model, **kw)
            else:
                generator = TransformersGenerator(args.model, batch_size=args.batch_size, **kw)
        except OSError as exc:
            raise UsageError(f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}") from None
    except UsageError as exc:
        print(f"minimal-rl eval: error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    print(f"evaluating {args.model} with {backend}: average@{args.k}, temperature {args.temperature}, "
          f"at most {args.max_new_tokens} new tokens, {args.prompt_template} prompt template")
    results = evaluate_benchmarks(
        generator, benchmarks, k=args.k, workers=args.workers, timeout_s=args.timeout,
        progress=not args.no_progress, log=print,
    )
    table = results_table(results)
    print("\n" + table + f"\n\n({time.perf_counter() - t0:.0f}s)")
    if args.output:
        payload = {
            "model": args.model, "k": args.k, "temperature": args.temperature, "max_new_tokens": args.max_new_tokens,
            "prompt_template": args.prompt_template, "backend": backend,
            "benchmarks": {r.name: {"problems": r.num_problems, "accuracy": r.accuracy, "timeouts": r.timeouts} for r in results},
            "mean_accuracy": sum(r.accuracy for r in results) / len(results),
        }
        Path(args.output).write_text(json.dumps(payload, indent=1))
    return 0
