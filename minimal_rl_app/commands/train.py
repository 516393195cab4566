"""``minimal-rl train``: one RL run with the TRL trainers of trl_ext.

With no ``--model`` it trains the embedded demo (a tiny Llama warm-started on two-digit addition and
subtraction, built once and cached) on 2 CPU cores in a few minutes; with ``--model`` and ``--dataset``
it runs the same trainer on a real model (GPU recommended).
"""

from __future__ import annotations

import argparse
import sys
import time

from minimal_rl.commands.common import UsageError, add_run_arguments

# Every algorithm the TRL side can train (kept in sync with trl_ext.main_job.TRAINABLE by a test).
ALGORITHM_CHOICES = (
    "raft",
    "raft_pp",
    "raft_pp_no_clip",  # RAFT++ without clipping (the paper's finding 3)
    "reinforce",
    "reinforce_rej",
    "reinforce_rej_std",
    "reinforce_remove_all_wrong",
    "reinforce_remove_all_correct",
    "reinforce_mean_zero",
    "grpo",
)
DEFAULT_STEPS = 300


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algorithm", choices=ALGORITHM_CHOICES, default="raft_pp", help="default raft_pp")
    add_run_arguments(p, DEFAULT_STEPS)


def run(args: argparse.Namespace) -> int:
    from trl_ext.main_job import write_json_atomic

    from minimal_rl.commands.common import plot_partial, prepare_output_dir, resolve_source, setup_environment, train_one

    t0 = time.perf_counter()
    try:
        setup_environment(args.threads)
        out = prepare_output_dir(args.output_dir or f"outputs/train-{args.algorithm}", args.overwrite)
        source = resolve_source(args)
        try:
            payload = train_one(args.algorithm, args, source, out)
        except KeyboardInterrupt:
            plot_partial(out, args.algorithm)
            print(f"\ninterrupted: partial metrics in {out / 'metrics.json'}", file=sys.stderr)
            return 130
    except UsageError as exc:
        print(f"minimal-rl train: error: {exc}", file=sys.stderr)
        return 2
    s = payload.get("summary", {})
    wall = time.perf_counter() - t0
    payload["wall_seconds_total"] = round(wall, 1)
    write_json_atomic(out / "metrics.json", payload)
    print(
        f"\n{args.algorithm}: held-out accuracy {s.get('heldout_accuracy_start', float('nan')):.3f} -> "
        f"{s.get('heldout_accuracy_end', float('nan')):.3f} after {args.steps} steps; "
        f"KL to initial model {s.get('heldout_kl_end') or 0.0:.4f}; entropy "
        f"{s.get('entropy_start', float('nan')):.3f} -> {s.get('entropy_end', float('nan')):.3f}; "
        f"{s.get('seconds_per_step_median', float('nan')):.2f} s/step (median); wall time "
        f"{f'{wall:.0f} s' if wall < 120 else f'{wall / 60:.1f} min'} (warm-start included if it ran)"
    )
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.png'} and {out / 'model'}/")
    return 0
