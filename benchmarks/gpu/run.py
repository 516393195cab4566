"""GPU benchmark kit: minimal-rl vs the hosts' own code at real widths, in one short run (docs/gpu-benchmark.md).

On a lent GPU machine (no network; torch + CUDA, transformers, accelerate there already) it installs the
carried wheels of benchmarks/gpu/wheels/ (TRL, datasets, Math-Verify and what they need; never torch or
transformers) into a private folder, then measures, each as a ratio within this one run:

* TRL, per model size (Qwen2 architecture, random weights: 0.5B and 1.5B): optimizer-step time, kept tokens/s and
  peak GPU memory of stock GRPOTrainer vs FilteredGRPOTrainer(sample_filter="none") (target: ours ≥ 0.98× stock
  throughput), and of RaftTrainer / ReinforceRejTrainer masking vs hard_drop at rejected fractions
  f = 0.25 / 0.5 / 0.75 (target: update time ≤ (1 - f) + 0.05 of masking);
* our reward's throughput on the machine's cores (1 thread, N threads, async) vs Math-Verify direct.

It prints one table and writes it, with every raw number, to OUT/gpu-benchmark.json and OUT/gpu-benchmark.md.
A global deadline (--budget, from the start of this process) skips the cells that would not fit and says so.

    python benchmarks/gpu/run.py --out $OUT            # the lent machine (8-minute budget in all)
    python benchmarks/gpu/run.py --smoke --out /tmp/x   # CPU: tiny model, 2 steps per cell, a few reward items
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

START = time.monotonic()
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WHEELS = HERE / "wheels"
SITE = Path("/tmp/minimal-rl-gpu-site")
NEEDED = ("trl", "datasets", "math_verify")  # what the image lacks (docs/gpu-benchmark.md)

for key, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                   ("TRL_EXPERIMENTAL_SILENCE", "1"), ("HF_DATASETS_OFFLINE", "1")):
    os.environ.setdefault(key, value)


def _prepend_path(path: Path) -> None:
    sys.path.insert(0, str(path))
    # the reward's helper processes are fresh interpreters: they must find the same packages
    os.environ["PYTHONPATH"] = os.pathsep.join([str(path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def ensure_packages(wheels: Path, site: Path) -> str:
    """Install the carried wheels (no index, no dependencies) into `site` if a needed package is missing."""
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if not missing:
        return "already installed"
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not found:
        raise SystemExit(f"missing {', '.join(missing)} and no wheels in {wheels}: run benchmarks/gpu/fetch_wheels.sh "
                         "on a networked machine and carry that folder (docs/gpu-benchmark.md)")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, found)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip could not install the carried wheels:\n{done.stderr[-2000:]}")
    _prepend_path(site)
    importlib.invalidate_caches()
    still = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if still:
        raise SystemExit(f"still missing after installing {len(found)} wheels: {', '.join(still)}")
    return f"installed {len(found)} wheels into {site}"


def environment(device) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    info = {"python": platform.python_version(), "machine": platform.machine(), "torch": torch.__version__,
            "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    for name in ("transformers", "accelerate", "trl", "datasets", "math-verify", "latex2sympy2_extended",
                 "antlr4-python3-runtime", "pyarrow", "fsspec", "huggingface_hub", "tokenizers", "vllm"):
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = None
    return info


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-benchmark.json / .md")
    parser.add_argument("--smoke", action="store_true", help="CPU smoke run: tiny model, 2 steps per cell")
    parser.add_argument("--sizes", default=None, help="model sizes, comma-separated (default 0.5B,1.5B; smoke: tiny)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds from process start before remaining cells are skipped (default 420; smoke 600)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per generation batch (default 16; smoke 4)")
    parser.add_argument("--completion-tokens", type=int, default=None, help="default 512; smoke 8")
    parser.add_argument("--micro-batches", type=int, default=None, help="micro-batches per step (default 4; smoke 2)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per cell, first a warm-up (default 3; smoke 2)")
    parser.add_argument("--reward-n", type=int, default=None, help="reward responses (default 2048; smoke 12)")
    parser.add_argument("--reward-pathological", type=int, default=None, help="default 2; smoke 0")
    parser.add_argument("--reward-threads", type=int, default=None, help="default: the machine's cores")
    parser.add_argument("--reward-timeout", type=float, default=5.0, help="our timeout_s (default 5)")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out: trl, reward")
    parser.add_argument("--wheels", type=Path, default=WHEELS, help=f"carried wheels (default {WHEELS.relative_to(REPO)})")
    parser.add_argument("--no-install", action="store_true", help="never install the carried wheels")
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults = dict(sizes="tiny" if smoke else "0.5B,1.5B", budget=600.0 if smoke else 420.0,
                    prompts=4 if smoke else 16, completion_tokens=8 if smoke else 512,
                    micro_batches=2 if smoke else 4, steps=2 if smoke else 3, reward_n=12 if smoke else 2048,
                    reward_pathological=0 if smoke else 2)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return parser, args


def validate(parser, args, sizes: list[str]) -> None:
    from sizes import QWEN2_SIZES

    unknown = [s for s in sizes if s not in QWEN2_SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; known: {', '.join(QWEN2_SIZES)}")
    if args.prompts < 4 or args.prompts % 4:
        parser.error("--prompts must be a positive multiple of 4 (so that f = 0.25 / 0.5 / 0.75 is exact)")
    if (args.prompts * 4) % args.micro_batches or args.micro_batches < 1:
        parser.error("--micro-batches must divide prompts x 4 rows")
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step is a warm-up)")
    if args.budget <= 0 or args.reward_n < 1 or args.completion_tokens < 1:
        parser.error("--budget, --reward-n and --completion-tokens must be positive")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")


def trl_cells(size: str, shape, device, deadline: float, results, make, seconds_per_param: float) -> float:
    """All TRL cells of one model size, in priority order; skipped (and said so) past the deadline.

    A cell runs only if the longest cell so far (of this size; before the first one, `seconds_per_param` of
    the last size scaled to this one) still fits. Returns this size's longest cell per parameter."""
    import torch

    import trl_cells as tc

    label = f"Qwen2 {size}"
    tokenizer = tc.build_tokenizer(tc.QWEN2_SIZES[size]["vocab_size"])
    start = time.monotonic()
    model = tc.build_model(size, tokenizer, device)
    params = sum(p.numel() for p in model.parameters())
    prompts = tc.make_prompts(shape.prompts)
    cache, gen_s = tc.generate_completions(model, tokenizer, prompts, shape, device)
    results.append(make(section="trl", cell="generation (model.generate, replayed below)", size=label,
                        rows=shape.rows, step_s=gen_s, rate=shape.rows * shape.completion_tokens / gen_s,
                        wall_s=time.monotonic() - start,
                        extra={"parameters": params, "completion_tokens": shape.completion_tokens}))

    # stock, ours, stock again: the ratio uses both stock runs, so a drift of the machine hits both sides
    plan = [("stock GRPOTrainer", "stock", 0.5, False), ("FilteredGRPO none", "ours_none", 0.5, False),
            ("stock GRPOTrainer (again)", "stock_again", 0.5, False)]
    for f in tc.FRACTIONS:
        for kind, name in (("reinforce_rej", "ReinforceRej"), ("raft", "RAFT")):
            plan += [(f"{name} mask", kind, f, False), (f"{name} hard_drop", kind, f, True)]
    estimate = seconds_per_param * params
    measured: dict[tuple, object] = {}
    for cell, kind, f, hard in plan:
        shown_f = None if kind in ("stock", "ours_none", "stock_again") else f
        row = make(section="trl", cell=cell, size=label, f=shown_f)
        # a hard-drop cell without its masked partner is worthless: skip both together
        partner = (kind, f, False)
        if hard and partner not in measured:
            row.status = "skipped: its mask cell did not run"
            results.append(row)
            continue
        # a mask cell needs room for its hard-drop partner, stock for ours and stock again
        room = {"stock": 3, "ours_none": 2}.get(kind, 1 if hard or kind == "stock_again" else 2)
        if time.monotonic() + estimate * room > deadline:
            row.status = "skipped: deadline"
            results.append(row)
            continue
        cell_start = time.monotonic()
        try:
            table = tc.correctness_table(kind if kind in ("raft", "reinforce_rej") else "reinforce_rej", f, prompts, shape.n)
            out = tc.run_cell(model, tokenizer, prompts, cache, shape, device, kind.removesuffix("_again"), table,
                              hard_drop=hard)
        except Exception as exc:  # report and go on: one broken cell must not cost the others
            row.status = f"error: {type(exc).__name__}: {exc}"[:300]
            traceback.print_exc()
            results.append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        row.wall_s = time.monotonic() - cell_start
        estimate = max(estimate, row.wall_s)
        for key in ("rows", "kept_tokens", "score_s", "update_s", "step_s", "peak_gib"):
            setattr(row, key, out.get(key))
        row.rate = out["kept_tokens"] / out["step_s"] if out.get("kept_tokens") else None
        row.extra["steps_timed"] = out["steps_timed"]
        measured[(kind, f, hard)] = row
        if kind == "stock_again" and ("ours_none", f, False) in measured:
            ours = measured[("ours_none", f, False)]
            stock_s = statistics.mean([measured[("stock", f, False)].step_s, row.step_s])
            ours.ratio = stock_s / ours.step_s  # throughput, x stock (the mean of the two stock cells)
            ours.target, ours.met = "≥ 0.98× stock", ours.ratio >= 0.98
        if hard:
            masked = measured[partner]
            row.ratio = row.update_s / masked.update_s  # update time, x masking
            row.target = f"≤ {1 - f + 0.05:.2f}× mask"
            row.met = row.ratio <= 1 - f + 0.05
            row.extra["peak_x_mask"] = (row.peak_gib / masked.peak_gib) if row.peak_gib and masked.peak_gib else None
        results.append(row)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return estimate / params


def _fmt(value, spec: str = ".3f") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return format(value, spec)


def render(results, meta: dict) -> str:
    lines = [
        f"minimal-rl GPU benchmark — {meta['env'].get('gpu') or meta['env']['device']}, {meta['env']['cpu_cores']} CPU "
        f"cores; torch {meta['env']['torch']}, transformers {meta['env']['transformers']}, trl {meta['env']['trl']}; "
        f"{meta['settings']}; wall {meta['wall_s']:.0f} s of a {meta['budget_s']:.0f} s budget",
        "",
        "| section | size | cell | f | status | rows | kept tok | score (s) | update (s) | step (s) | rate (/s) | "
        "peak GiB | ratio | target | met | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        note = ", ".join(f"{k}={_fmt(v, '.2f') if isinstance(v, float) else v}" for k, v in r.extra.items() if v is not None)
        lines.append(
            f"| {r.section} | {r.size} | {r.cell} | {_fmt(r.f, '.2f')} | {r.status} | {_fmt(r.rows, 'd')} | "
            f"{_fmt(r.kept_tokens, 'd')} | {_fmt(r.score_s)} | {_fmt(r.update_s)} | {_fmt(r.step_s)} | "
            f"{_fmt(r.rate, '.0f')} | {_fmt(r.peak_gib, '.1f')} | {_fmt(r.ratio)} | {r.target or '—'} | "
            f"{_fmt(r.met)} | {note} |")

    def name(r):
        return f"{r.size} {r.cell}" + (f" f={r.f:g}" if r.f is not None else "")

    skipped = [name(r) for r in results if r.status.startswith("skipped")]
    errors = [name(r) for r in results if r.status.startswith("error")]
    lines.append("")
    lines.append(f"skipped: {len(skipped)} cell(s){': ' + '; '.join(skipped) if skipped else ''}")
    lines.append(f"errors: {len(errors)} cell(s){': ' + '; '.join(errors) if errors else ''}")
    lines.append("vLLM colocated generation: not measured (vLLM's wheels, several hundred MiB, do not fit the 64 MiB "
                 "that travels with the working tree)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    sys.path.insert(0, str(HERE))
    _prepend_path(REPO)
    sizes = [s for s in args.sizes.split(",") if s]
    skip = {s for s in args.skip.split(",") if s}
    validate(parser, args, sizes)
    deadline = START + args.budget
    import torch  # the image's own: never among the carried wheels

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type == "cpu" and not args.smoke and "trl" not in skip and set(sizes) - {"tiny", "small"}:
        print("run.py: no CUDA device here; the 0.5B / 1.5B cells need a GPU (use --smoke on a CPU)", file=sys.stderr)
        return 2
    install = "not attempted (--no-install)" if args.no_install else ensure_packages(args.wheels, SITE)

    from reward_cells import run_reward_cells
    from trl_cells import CellResult, Shape
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)) if not args.smoke else 1)
    env = environment(device)
    env["install"] = install
    print(f"environment: {json.dumps(env)}", flush=True)
    shape = Shape(prompts=args.prompts, n=4, completion_tokens=args.completion_tokens,
                  micro_batches=args.micro_batches, steps=args.steps)
    threads = args.reward_threads or env["cpu_cores"]

    results: list = []

    def make(**fields):
        return CellResult(**fields)

    # the reward cells first: bounded (about a minute) and independent of the GPU
    if "reward" not in skip:
        reward_deadline = min(deadline, time.monotonic() + (120 if not args.smoke else 300))
        run_reward_cells(args.reward_n, args.reward_pathological, threads, args.reward_timeout, reward_deadline,
                         results, make)
    if "trl" not in skip:
        from sizes import approx_parameters

        seconds_per_param = 0.0
        for size in sizes:
            # room for the model, its generation and one pair of cells
            if time.monotonic() + max(20.0, 3 * seconds_per_param * approx_parameters(size)) > deadline:
                results.append(make(section="trl", cell="all cells", size=f"Qwen2 {size}", status="skipped: deadline"))
                continue
            try:
                seconds_per_param = trl_cells(size, shape, device, deadline, results, make, seconds_per_param)
            except Exception as exc:
                traceback.print_exc()
                results.append(make(section="trl", cell="all cells", size=f"Qwen2 {size}",
                                    status=f"error: {type(exc).__name__}: {exc}"[:300]))

    meta = {"env": env, "wall_s": time.monotonic() - START, "budget_s": args.budget, "smoke": args.smoke,
            "settings": f"{shape.prompts} prompts x {shape.n} completions of {shape.completion_tokens} tokens, "
                        f"{shape.micro_batches} micro-batches, {shape.steps} steps per cell (first a warm-up), "
                        f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}; reward: "
                        + ("not run" if "reward" in skip else
                           f"{args.reward_n} responses, {threads} threads, timeout {args.reward_timeout:g} s")}
    text = render(results, meta)
    print(text, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-benchmark.md").write_text(text + "\n")
    (args.out / "gpu-benchmark.json").write_text(json.dumps({"meta": meta, "cells": [asdict(r) for r in results]},
                                                            indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
