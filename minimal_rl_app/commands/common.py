"""The arguments ``train`` and ``compare`` share, and the argparse types of every command.

Only argument parsing lives in `minimal_rl_app.commands`; what a command does is in `minimal_rl_app.jobs` (train,
compare), `minimal_rl_app.main_job` (one run), `minimal_rl_app.evaluation` (eval) and `minimal_rl_app.prepare`
(prepare-data). Heavy imports stay out of these modules: the CLI builds its parser from every subcommand module,
and ``minimal-rl --help`` must stay fast. Every option has a help text; the parser shows each default
(argparse.ArgumentDefaultsHelpFormatter).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from minimal_rl_app.inputs import UsageError  # noqa: F401 - re-exported for the commands


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
nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
nonneg_float = _number(float, lambda v: v >= 0, "a number >= 0")
REPORT_TO = ("none", "tensorboard", "wandb", "all")


def trainable_algorithm(algorithm: str) -> str:
    """argparse type: an algorithm trl_ext can sample for (one it cannot sample is refused, naming what is missing);
    unknown names are left to ``choices``."""
    from minimal_rl.table import check_host_sampling

    try:
        check_host_sampling(algorithm, "trl_ext")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return algorithm


def run_spec(text: str) -> str:
    """argparse type of ``compare --algorithms``: ``algorithm`` or ``algorithm+filter``."""
    from minimal_rl_app.main_job import parse_run_name

    try:
        parse_run_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_run_arguments(p: argparse.ArgumentParser, default_steps: int) -> None:
    """Arguments of one RL run (shared by train and compare)."""
    src = p.add_argument_group("model and data (default: the embedded demo, no download)")
    src.add_argument("--model", default=None, help="local folder or hub id of a causal LM (None: the embedded tiny Llama)")
    src.add_argument("--dataset", nargs="+", default=None, metavar="JSONL", help="training JSONL files with `problem` and `answer` (needs --model)")
    src.add_argument("--eval-data", nargs="+", default=None, metavar="JSONL", help="held-out JSONL (None: the demo's held-out split, or the last --eval-problems rows of --dataset)")
    src.add_argument("--prompt-template", choices=("auto", "paper", "plain"), default="auto", help="paper: the paper's system prompt and suffix; plain: the bare problem; auto: plain for the embedded model, paper otherwise (recorded with the saved model for `eval`)")
    src.add_argument("--cache-dir", default=None, help="where the warm-started demo model is cached (None: $MINIMAL_RL_CACHE or ~/.cache/minimal-rl)")
    src.add_argument("--operand-range", type=nonneg_int, nargs=2, default=None, metavar=("MIN", "MAX"),
                     help="embedded task: both operands in MIN..MAX (None: 10 99, two-digit); part of the warm-start's "
                     "cache key, so another range builds its own model")
    src.add_argument("--operations", nargs="+", choices=("+", "-"), default=None,
                     help="embedded task: the operations (None: + -)")
    src.add_argument("--allow-negative", action="store_true",
                     help="embedded task: subtraction may have a negative answer (off: a-b always has a >= b)")
    src.add_argument("--warmstart-target", type=float, default=0.30, help="sampled accuracy at which the demo warm-start stops: 0.2-0.5 gives mostly mixed groups; "
                     "0.12 gives a hard start, ~45%% of groups all wrong (docs/adaptive-sampling.md)")
    # Test-only: cap the warm-start (0 = random weights) and shrink the task, so CI runs in seconds.
    src.add_argument("--warmstart-max-steps", type=int, default=None, help=argparse.SUPPRESS)
    src.add_argument("--tiny-model", action="store_true", help=argparse.SUPPRESS)

    rl = p.add_argument_group("RL settings")
    rl.add_argument("--steps", type=positive_int, default=default_steps, help="optimiser steps")
    rl.add_argument("--prompts-per-step", type=positive_int, default=32, help="prompts per rollout batch")
    rl.add_argument("--mini-batches", type=positive_int, default=2, help="optimiser steps per rollout batch (2: the second is off-policy, so RAFT++'s ratio and clipping act; 1 makes RAFT++ identical to RAFT)")
    rl.add_argument("--num-generations", type=positive_int, default=8, help="samples per prompt (group size n, at least 2)")
    rl.add_argument("--lr", type=positive_float, default=None, help="learning rate (None: 1e-4 on the demo, where 3e-4 was unstable; 1e-6, the paper's, with --model)")
    rl.add_argument("--beta", type=nonneg_float, default=0.0, help="KL coefficient in the loss (paper: 0.001); >0 also logs TRL's per-step k3 KL")
    rl.add_argument("--max-completion-length", type=positive_int, default=None, help="new tokens per sample (None: 16 on the demo, 1024 otherwise)")
    rl.add_argument("--eval-every", type=positive_int, default=25, help="held-out evaluation interval in optimiser steps")
    rl.add_argument("--eval-problems", type=positive_int, default=256, help="held-out problems per evaluation")
    rl.add_argument("--eval-samples", type=positive_int, default=4, help="samples per held-out problem (temperature 1.0)")
    rl.add_argument("--seed", type=int, default=0, help="seed of the RL run (sampling, data order); the warm-start has its own")

    run = p.add_argument_group("run")
    run.add_argument("--output-dir", default=None, help="where metrics.json, the PNGs, the model and TRL's checkpoints go (None: outputs/train-<algorithm> or outputs/compare)")
    run.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --output-dir (only the files minimal-rl wrote, listed in its minimal-rl-files.json)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run in --output-dir from its last checkpoint (same settings)")
    run.add_argument("--save-every", type=nonneg_int, default=None, help="TRL checkpoint every N optimiser steps, a multiple of --mini-batches (None: about 50; 0: none); only the latest is kept")
    run.add_argument("--report-to", nargs="+", choices=REPORT_TO, default=["none"], help="also log to TensorBoard / Weights & Biases (TRL's report_to)")
    run.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (1 is fastest for the tiny model: measured 6x faster than 2 on 2 shared cores)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--use-vllm", action="store_true", help="generate rollouts with vLLM (TRL's colocate mode; GPU only)")
    run.add_argument("--log-every", type=positive_int, default=1, help="print a line every N rollout batches (and at every held-out evaluation)")
