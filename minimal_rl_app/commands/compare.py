"""``minimal-rl compare``: several algorithms (and seeds), identical budget, one figure and one table
(arguments only; `minimal_rl_app.jobs` runs them, `minimal_rl_app.comparison` analyses them)."""

from __future__ import annotations

import argparse

from minimal_rl.table import ALGORITHMS
from minimal_rl_app.commands.common import add_run_arguments, run_spec

DEFAULT_ALGORITHMS = ("raft", "raft_pp", "grpo", "reinforce_rej")
DEFAULT_STEPS = 300


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--algorithms", nargs="+", type=run_spec, default=list(DEFAULT_ALGORITHMS), metavar="ALGO[+FILTER]",
        help=f"runs: an algorithm ({', '.join(ALGORITHMS)}), optionally with a sample filter replacing its own, "
        "e.g. grpo+drop_uniform",
    )
    add_run_arguments(p, DEFAULT_STEPS)
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                   help="run every algorithm with each seed (folders <algo>/seed-N); the table and figure show the "
                   "mean and its spread (None: --seed alone)")
    p.add_argument("--render-only", action="store_true", help="train nothing: redraw the figure and table from the runs already in --output-dir")


def run(args: argparse.Namespace) -> int:
    from minimal_rl_app.jobs import compare_command

    return compare_command(args, args.started)
