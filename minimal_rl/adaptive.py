"""Reinforce-Ada's adaptive sampling as pure rules: Xiong et al., "Reinforce-Ada: An Adaptive Sampling Framework for
Reinforce-Style LLM Training" (arXiv 2510.04996), the follow-up of the Minimal-RL paper (spec: ``ALGORITHMS.md``,
"Beyond the paper: adaptive sampling").

A uniform group is mostly an artefact of sampling too few responses. So every prompt of a batch is sampled in
rounds until its *pool* (every response generated for it) shows a signal, then n responses are kept for the update
and their baseline is taken from the whole pool. One function per rule, top to bottom:

    has_signal            a pool's counts, the exit rule         -> does the prompt stop being sampled?
    keep_on_exit          a pool's correctness, n                 -> which n responses an exiting prompt keeps
    keep_after_last_round a pool's correctness, n, the exit rule  -> which responses a still-active prompt keeps
    response_values       scores, the threshold rule              -> correctness and the baseline's values
    pool_baseline         kept rewards, pool rewards              -> advantages A_i = r_i - mean(pool) [/ std(pool)]
    run_rounds            the loop, with a host's sampling callback -> pools, kept indices, metrics

Pools are lists of booleans (correct iff score > positive_threshold) in generation order ("first come"), so a host
maps kept positions back to its own rows. No host code here: `run_rounds` asks the host for each round's responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from minimal_rl.algorithms import correctness
from minimal_rl.filtering import resolve_threshold
from minimal_rl.table import EXIT_RULES, AlgorithmSpec

DEFAULT_MAX_ROUNDS = 4  # the released default
DEFAULT_ROUND_REPEAT = 8  # new responses per active prompt and round (the released default)


def _check_exit_rule(exit_rule: str) -> None:
    if exit_rule not in EXIT_RULES:
        raise ValueError(f"exit_rule must be one of {tuple(EXIT_RULES)}, got {exit_rule!r}")


def has_signal(num_correct: int, num_wrong: int, n: int, exit_rule: str) -> bool:
    """The exit rule (arXiv 2510.04996, Sec. 3.2): whether a prompt's pool has enough signal to stop sampling it.

    ``balanced`` (Reinforce-Ada-balance): at least n//2 correct and n - n//2 wrong responses, so the n kept ones can
    be half and half. ``positive_focused`` (Reinforce-Ada-pos): at least one correct response.
    """
    _check_exit_rule(exit_rule)
    if exit_rule == "balanced":
        return num_correct >= n // 2 and num_wrong >= n - n // 2
    return num_correct >= 1


def _take(pool_correct: Sequence[bool], num_correct: int, num_wrong: int) -> list[int]:
    """The first ``num_correct`` correct and first ``num_wrong`` wrong positions of the pool, in pool order."""
    kept, taken = [], {True: 0, False: 0}
    wanted = {True: num_correct, False: num_wrong}
    for position, correct in enumerate(pool_correct):
        correct = bool(correct)
        if taken[correct] < wanted[correct]:
            taken[correct] += 1
            kept.append(position)
    return kept


def _split_with_top_up(available_correct: int, available_wrong: int, size: int, want_correct: int) -> tuple[int, int]:
    """(correct, wrong) counts summing to ``size`` (<= the pool), ``want_correct`` correct where the pool has them,
    the shortfall of either kind topped up from the other."""
    take_correct = min(want_correct, available_correct)
    take_wrong = min(size - want_correct, available_wrong)
    short = size - take_correct - take_wrong
    extra_correct = min(available_correct - take_correct, short)
    return take_correct + extra_correct, take_wrong + (short - extra_correct)


def keep_on_exit(pool_correct: Sequence[bool], n: int) -> list[int]:
    """The keep / downsample rule (arXiv 2510.04996, Sec. 3.2): the n responses a prompt keeps when it exits.

    n//2 correct and n - n//2 wrong where the pool has them, the kind that is short topped up from the other, each
    kind taken first come (generation order, as the released code). A pool smaller than n keeps everything.
    Returns positions in the pool, in pool order.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    size = min(n, len(pool_correct))
    correct = sum(bool(c) for c in pool_correct)
    return _take(pool_correct, *_split_with_top_up(correct, len(pool_correct) - correct, size, size // 2))


def keep_after_last_round(pool_correct: Sequence[bool], n: int, exit_rule: str) -> list[int]:
    """The fallback (arXiv 2510.04996, Sec. 3.2): what a prompt still active after the last round keeps.

    min(n, pool size) responses. ``balanced``: the half/half rule of `keep_on_exit`. ``positive_focused``: the
    correct share follows the pool's ratio (round half up), with at least one of each kind where both exist. A
    uniform pool keeps one kind only: it carries no signal and the ``drop_uniform`` filter then drops it.
    """
    _check_exit_rule(exit_rule)
    if exit_rule == "balanced":
        return keep_on_exit(pool_correct, n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    size = min(n, len(pool_correct))
    correct = sum(bool(c) for c in pool_correct)
    wrong = len(pool_correct) - correct
    want = math.floor(size * correct / max(len(pool_correct), 1) + 0.5)
    if correct and wrong and size >= 2:
        want = min(max(want, 1), size - 1)
    return _take(pool_correct, *_split_with_top_up(correct, wrong, size, want))


def response_values(
    scores: torch.Tensor, spec: AlgorithmSpec, sample_filter: str, positive_threshold: float | None,
    reward_mapping: str, nan_policy: str = "wrong",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correctness (the exit rule's) and the value the pool baseline averages, for scores (spec step 4: r on the 0/1
    scale): 0/1 correctness under ``reward_mapping="signed"`` (the released code's 0/1 rewards), the score itself
    under ``"raw"``. Both hosts put a pool and its kept rows through this, so they are on one scale."""
    scores = torch.as_tensor(scores, dtype=torch.float32)
    threshold = resolve_threshold(scores, positive_threshold, spec, sample_filter, reward_mapping)
    correct = correctness(scores, threshold, nan_policy)
    return correct, correct.float() if reward_mapping == "signed" else torch.nan_to_num(scores)


def pool_baseline(
    kept_rewards: torch.Tensor, pool_rewards: torch.Tensor, normalize_by_std: bool = False, eps: float = 1e-6
) -> torch.Tensor:
    """The pool baseline (arXiv 2510.04996, Sec. 3.3; released: GRPO with ``global_stat_est``): for one prompt,
    A_i = r_i - mean(pool), and with ``normalize_by_std`` divided by the pool's unbiased std clamped at ``eps``.

    The pool is every response generated for the prompt in every round, not only the kept ones. A pool of one
    response has mean 0 and std 1. The paper's runs use no std (``norm_adv_by_std_in_grpo=False``).
    """
    kept = torch.as_tensor(kept_rewards, dtype=torch.float64)
    pool = torch.as_tensor(pool_rewards, dtype=torch.float64).reshape(-1)
    if pool.numel() == 0:
        raise ValueError("the pool of a prompt holds at least the responses it keeps")
    if pool.numel() == 1:
        mean, std = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    else:
        mean, std = pool.mean(), pool.std()
    advantages = kept - mean
    if normalize_by_std:
        advantages = advantages / std.clamp(min=eps)
    return advantages.to(torch.float32)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclass
class PromptPool:
    """Everything generated for one prompt over the rounds, and what it keeps."""

    correct: list[bool] = field(default_factory=list)  # the pool, in generation order
    exit_round: int | None = None  # 1-based round after which it exited with a signal; None: never
    kept: list[int] = field(default_factory=list)  # positions in ``correct`` kept for the update

    @property
    def uniform(self) -> bool:
        """The whole pool is of one kind: no signal (the released code keeps it with weight 0; ``drop_uniform``
        drops it here)."""
        return len(set(self.correct)) < 2

    def add_round(self, correct: Sequence[bool], round_number: int, n: int, exit_rule: str) -> bool:
        """Add one round's responses; True when the pool now has a signal (`has_signal`): the prompt exits after
        ``round_number`` and keeps `keep_on_exit`."""
        self.correct.extend(bool(c) for c in correct)
        num_correct = sum(self.correct)
        if not has_signal(num_correct, len(self.correct) - num_correct, n, exit_rule):
            return False
        self.exit_round = round_number
        self.kept = keep_on_exit(self.correct, n)
        return True

    def finish_without_signal(self, n: int, exit_rule: str) -> None:
        """After the last round, for a prompt still active: keep `keep_after_last_round`."""
        self.kept = keep_after_last_round(self.correct, n, exit_rule)


@dataclass
class AdaptiveRounds:
    """The outcome of `run_rounds` for a batch of prompts."""

    pools: list[PromptPool]
    active_per_round: list[int]  # prompts sampled in each round

    def metrics(self) -> dict[str, float]:
        """Per-step metrics of the spec: rounds used, active prompts per round, responses generated per response
        kept, the fraction of prompts that exited with a signal (and of uniform pools, dropped)."""
        prompts = max(len(self.pools), 1)
        generated = sum(len(p.correct) for p in self.pools)
        kept = sum(len(p.kept) for p in self.pools if not p.uniform)
        out = {
            "rounds": float(len(self.active_per_round)),
            "generated_per_kept": generated / kept if kept else float(generated),
            "exited_with_signal_frac": sum(p.exit_round is not None for p in self.pools) / prompts,
            "uniform_pools_frac": sum(p.uniform for p in self.pools) / prompts,
        }
        for round_number, active in enumerate(self.active_per_round, start=1):
            out[f"active_prompts/round_{round_number}"] = float(active)
        return out


SampleRound = Callable[[list[int], int], list[list[bool]]]


def run_rounds(
    sample_round: SampleRound,
    num_prompts: int,
    n: int,
    exit_rule: str,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    round_repeat: int = DEFAULT_ROUND_REPEAT,
) -> AdaptiveRounds:
    """Reinforce-Ada's multi-round sampling (arXiv 2510.04996, Algorithm 1) over a host's sampler.

    ``sample_round(active, round_repeat)`` generates ``round_repeat`` new responses for each prompt index in
    ``active`` and returns their correctness, one list per active prompt. A prompt exits (`has_signal`) after the
    round that gives its pool enough signal and keeps `keep_on_exit`; the ones still active after ``max_rounds``
    keep `keep_after_last_round`.
    """
    _check_exit_rule(exit_rule)
    if max_rounds < 1 or round_repeat < 1:
        raise ValueError(f"max_rounds and round_repeat must be >= 1, got {max_rounds} and {round_repeat}")
    pools = [PromptPool() for _ in range(num_prompts)]
    active = list(range(num_prompts))
    active_per_round = []
    for round_number in range(1, max_rounds + 1):
        if not active:
            break
        active_per_round.append(len(active))
        new = sample_round(list(active), round_repeat)
        if len(new) != len(active):
            raise ValueError(f"sample_round returned {len(new)} pools for {len(active)} active prompts")
        active = [prompt for prompt, responses in zip(active, new)
                  if not pools[prompt].add_round(responses, round_number, n, exit_rule)]
    for prompt in active:
        pools[prompt].finish_without_signal(n, exit_rule)
    return AdaptiveRounds(pools, active_per_round)
