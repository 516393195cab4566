"""``minimal-rl train``: one RL run with the TRL trainers of trl_ext.

With no ``--model`` it trains the embedded demo (a tiny Llama warm-started on two-digit addition and
subtraction, built once and cached) on 2 CPU cores in a few minutes; with ``--model`` and ``--dataset``
it runs the same trainer on a real model (GPU recommended).
"""

from __future__ import annotations

import argparse
import sys
import time

from minimal_rl.table import ALGORITHMS, SAMPLE_FILTERS, host_can_sample
from minimal_rl_app.commands.common import UsageError, add_run_arguments, trainable_algorithm

# every algorithm of the core's table that trl_ext can sample for (Reinforce-Ada's: a clear usage error)
ALGORITHM_CHOICES = tuple(name for name in ALGORITHMS if host_can_sample(name, "trl_ext"))
DEFAULT_STEPS = 300


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algorithm", type=trainable_algorithm, choices=ALGORITHM_CHOICES, default="raft_pp", help="default raft_pp")
    p.add_argument(
        "--sample-filter", choices=tuple(SAMPLE_FILTERS), default=None,
        help="which samples leave the update, replacing the algorithm's own filter (e.g. --algorithm grpo "
        "--sample-filter drop_uniform: GRPO without its zero-variance groups)",
    )
    add_run_arguments(p, DEFAULT_STEPS)


def run(args: argparse.Namespace) -> int:
    from minimal_rl_app.main_job import run_name, write_json_atomic

    from minimal_rl_app.commands.common import plot_partial, prepare_output_dir, resolve_source, setup_environment, train_one

    t0 = time.perf_counter()
    try:
        setup_environment(args.threads)
        name = run_name(args.algorithm, args.sample_filter)
        out = prepare_output_dir(args.output_dir or f"outputs/train-{name}", args.overwrite)
        source = resolve_source(args)
        try:
            payload = train_one(name, args, source, out)
        except KeyboardInterrupt:
            plot_partial(out, name)
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
        f"\n{name}: held-out accuracy {s.get('heldout_accuracy_start', float('nan')):.3f} -> "
        f"{s.get('heldout_accuracy_end', float('nan')):.3f} after {args.steps} steps; "
        f"KL to initial model {s.get('heldout_kl_end') or 0.0:.4f}; entropy "
        f"{s.get('entropy_start', float('nan')):.3f} -> {s.get('entropy_end', float('nan')):.3f}; "
        f"{s.get('seconds_per_step_median', float('nan')):.2f} s/step (median); wall time "
        f"{f'{wall:.0f} s' if wall < 120 else f'{wall / 60:.1f} min'} (warm-start included if it ran)"
    )
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.png'} and {out / 'model'}/")
    return 0
