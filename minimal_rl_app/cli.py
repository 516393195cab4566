"""The ``minimal-rl`` console command.

Each subcommand lives in its own module and registers itself in ``SUBCOMMANDS`` as
``name -> "module:function"``; the module is only imported when that subcommand runs, so
``minimal-rl --version`` stays instant and the core never imports verl or TRL.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # wall times the commands print include their start-up

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402

from minimal_rl import __version__

# name -> (module that defines `add_arguments(parser)` and `run(args) -> int`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "prepare-data": ("minimal_rl_app.commands.prepare_data", "write the paper's training/evaluation sets in verl's and TRL's formats"),
    "train": ("minimal_rl_app.commands.train", "RL-train a model (default: the embedded CPU demo) with RAFT, RAFT++, Reinforce-Rej, GRPO, ..."),
    "compare": ("minimal_rl_app.commands.compare", "train several algorithms with identical seeds and budget; one figure and table"),
    "eval": ("minimal_rl_app.commands.eval", "average@k accuracy of a model on JSONL benchmarks (problem, answer)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minimal-rl",
        description="RAFT, RAFT++ and Reinforce-Rej (Xiong et al., arXiv 2504.11343) for verl and TRL.",
    )
    parser.add_argument("--version", action="version", version=f"minimal-rl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        importlib.import_module(module_name).add_arguments(p)
        p.set_defaults(_module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    args.started = STARTED if argv is None else time.perf_counter()
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
