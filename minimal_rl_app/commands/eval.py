"""``minimal-rl eval``: average@k of a local or hub model on JSONL benchmarks (`problem`, `answer`)
(arguments only; `minimal_rl_app.jobs.eval_command` does the work).

The paper's protocol (Sec. 5.1): k = 16 samples per problem at temperature 1.0, its prompt template
through the model's chat template, Math-Verify scoring; the table reports each benchmark and their mean.
vLLM is used when it is installed and a GPU is present, ``transformers.generate`` otherwise.
"""

from __future__ import annotations

import argparse

from minimal_rl_app.commands.common import nonneg_float, positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="local folder (e.g. outputs/train-raft_pp/model) or hub id")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="JSONL files or folders of *.jsonl (one benchmark per file)")
    p.add_argument("--k", type=positive_int, default=16, help="samples per problem (average@k)")
    p.add_argument("--max-new-tokens", type=positive_int, default=4096, help="new tokens per sample (the paper's limit; on a CPU use far fewer)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N problems of each benchmark (None: all)")
    p.add_argument("--temperature", type=nonneg_float, default=1.0, help="sampling temperature (0: greedy)")
    p.add_argument("--prompt-template", choices=("auto", "paper", "plain"), default="auto", help="paper: the paper's system prompt and suffix; plain: the bare problem; auto: the one `minimal-rl train` recorded with the model (minimal-rl.json), else paper")
    p.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto", help="generation backend (auto: vLLM when installed and a GPU is present, else transformers)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sequences per generate call (transformers backend)")
    p.add_argument("--workers", type=positive_int, default=2, help="scoring processes")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds of Math-Verify per completion before it counts as wrong")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (None: torch's default)")
    p.add_argument("--output", default=None, help="also write the results as JSON to this file (its folder must exist)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from minimal_rl_app.jobs import eval_command

    return eval_command(args)
