"""``minimal-rl prepare-data``: the paper's training and evaluation sets in verl's and TRL's formats (arguments
only; `minimal_rl_app.prepare` does the work).

For each DATASET it writes, under ``--output-dir/<dataset>/``, verl's parquet, a Hugging Face dataset for TRL and a
summary of the rows read, dropped for each reason and written; the paper's filters (Sec. 5.1) are described in
`minimal_rl_app.prepare`.
"""

from __future__ import annotations

import argparse

from minimal_rl.data import ANSWER_CHECKS, DATASETS, PAPER_MAX_PROBLEM_TOKENS
from minimal_rl_app.commands.common import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    listing = "; ".join(f"{s.name}: {s.description} [{s.hub_name}]" for s in DATASETS.values())
    parser.add_argument("datasets", nargs="+", choices=list(DATASETS), metavar="DATASET", help=listing)
    parser.add_argument("--input", help="local .jsonl/.json/.parquet file instead of the hub (one DATASET only)")
    parser.add_argument("--output-dir", default="data", help="writes OUTPUT_DIR/<dataset>/...")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output of the same dataset and split (only the files prepare-data wrote, listed in its minimal-rl-files.json)")
    parser.add_argument(
        "--tokenizer", help="tokenizer (path or hub name) for the length filter; None: ceil(chars / 3) estimate"
    )
    parser.add_argument(
        "--max-problem-tokens",
        type=int,
        default=None,
        help=f"drop problems longer than this (0: keep all); None: {PAPER_MAX_PROBLEM_TOKENS} for numina_math, "
        "0 for the evaluation sets",
    )
    parser.add_argument("--format", choices=["verl", "hf", "both"], default="both", help="what to write")
    parser.add_argument(
        "--answer-check",
        choices=ANSWER_CHECKS,
        default=None,
        help="None: the dataset's own; parse: drop gold answers Math-Verify cannot parse or the reward cannot match (default for "
        "numina_math); self: drop only answers the reward cannot match against themselves (default for the "
        "evaluation sets, keeping the benchmarks' sizes); none: keep all",
    )
    parser.add_argument("--num-proc", type=positive_int, default=1, help="processes for the answer check")
    parser.add_argument("--limit", type=positive_int, default=None, help="read at most this many source rows (None: all)")
    parser.add_argument("--hub-name", help="override the hub dataset name (one DATASET only)")
    parser.add_argument("--hub-config", help="override the hub dataset config")
    parser.add_argument("--hub-split", help="override the hub split to read")
    parser.add_argument("--split", help="split label for outputs and extra_info (None: train or test)")


def run(args: argparse.Namespace) -> int:
    from minimal_rl_app.prepare import prepare_command

    return prepare_command(args)
