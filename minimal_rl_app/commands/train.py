"""``minimal-rl train``: one RL run with the TRL trainers of trl_ext (arguments only; `minimal_rl_app.jobs`
does the work).

With no ``--model`` it trains the embedded demo (a tiny Llama warm-started on two-digit addition and
subtraction, built once and cached) on 2 CPU cores in a few minutes; with ``--model`` and ``--dataset``
it runs the same trainer on a real model (GPU recommended).
"""

from __future__ import annotations

import argparse

from minimal_rl.table import ALGORITHMS, SAMPLE_FILTERS, host_can_sample
from minimal_rl_app.commands.common import add_run_arguments, trainable_algorithm

# every algorithm of the core's table that trl_ext can sample for (Reinforce-Ada's rows included: adaptive rounds)
ALGORITHM_CHOICES = tuple(name for name in ALGORITHMS if host_can_sample(name, "trl_ext"))
DEFAULT_STEPS = 300


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--algorithm", type=trainable_algorithm, choices=ALGORITHM_CHOICES, default="raft_pp",
        help="the algorithm (minimal_rl.table)",
    )
    p.add_argument(
        "--sample-filter", choices=tuple(SAMPLE_FILTERS), default=None,
        help="which samples leave the update, replacing the algorithm's own filter (e.g. --algorithm grpo "
        "--sample-filter drop_uniform: GRPO without its zero-variance groups)",
    )
    add_run_arguments(p, DEFAULT_STEPS)


def run(args: argparse.Namespace) -> int:
    from minimal_rl_app.jobs import train_command

    return train_command(args, args.started)
