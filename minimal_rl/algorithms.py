"""The algorithms of Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection Sampling
to Reinforce" (arXiv 2504.11343), as framework-free, batch-vectorised tensor functions.

Everything here works on one flat batch of B responses with a group id per response (responses to
the same prompt share a group id). The pipeline, top to bottom:

    group_index        group ids            -> contiguous group index per response (0..G-1)
    correctness        raw scores           -> c_i = [s_i > positive_threshold]  (threshold: `minimal_rl.filtering`)
    group_statistics   c, group index       -> size, correct count, kind and uniformity of every group
    signed_rewards     c                    -> r_i = +1 / -1                (paper, Sec. 2)
    *_weights          r, group statistics  -> per-sample weight A_i        (paper, Sec. 3, Table 1)
    keep_mask          c, group statistics  -> which samples the update may use
    compute_weights    all of the above for one named algorithm

The framework plugins (`verl_ext`, `trl_ext`) call `compute_weights` and nothing else, so both
frameworks give identical weights and keep masks for the same batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from minimal_rl.filtering import resolve_threshold, uniform_basis, uniform_groups
from minimal_rl.table import (  # noqa: F401 (ALGORITHMS, SAMPLE_FILTERS: re-exported)
    ALGORITHMS,
    BINARY_SCALE_WEIGHTS,
    SAMPLE_FILTERS,
    check_filter_fits,
    get_algorithm,
    get_sample_filter,
)

logger = logging.getLogger(__name__)

# Group kinds, as integer codes so masks stay vectorised.
ALL_CORRECT = 0
ALL_WRONG = 1
MIXED = 2
KIND_NAMES = {ALL_CORRECT: "all_correct", ALL_WRONG: "all_wrong", MIXED: "mixed"}

REWARD_MAPPINGS = ("signed", "raw")
NAN_POLICIES = ("wrong", "error")


# --------------------------------------------------------------------------------------------
# Groups and correctness
# --------------------------------------------------------------------------------------------


def group_index(group_ids: Any) -> tuple[torch.Tensor, int]:
    """Map arbitrary group ids (verl's uid strings, ints, a tensor) to contiguous indices 0..G-1.

    Returns ``(index, num_groups)`` with ``index`` a LongTensor of shape (B,). Groups may be uneven in
    size and need not be contiguous in the batch; which group gets which label is unspecified (object ids
    such as verl's uid strings: order of first appearance). A missing id (None / NaN) is an error: silently
    merging such responses into one "group" would corrupt every group statistic.
    """
    if isinstance(group_ids, torch.Tensor):
        if group_ids.dtype.is_floating_point:
            raise ValueError("group ids must be integers or strings, got a floating-point tensor")
        ids = group_ids.reshape(-1).cpu().numpy()
    else:
        ids = np.asarray(group_ids)
        if ids.ndim != 1:
            ids = ids.reshape(-1)
    if ids.size == 0:
        return torch.zeros(0, dtype=torch.long), 0
    if ids.dtype == object:
        # Hash-based factorisation in first-appearance order: O(B), no sort of Python objects (sorting
        # verl's 4096 uuid strings costs ~1 ms per np.unique; this ~0.3 ms). For groups laid out
        # contiguously it gives the same labels as the run-based path below.
        codes: dict[Any, int] = {}
        try:
            index = np.fromiter((codes.setdefault(x, len(codes)) for x in ids.tolist()), np.int64, ids.size)
        except TypeError as e:  # unhashable ids (lists, dicts, ...)
            raise ValueError(f"group ids must be hashable (strings or integers): {e}") from None
        # missing ids are checked on the G distinct keys, not the B responses
        if any(k is None or (isinstance(k, float) and k != k) for k in codes):
            missing = np.fromiter((x is None or (isinstance(x, float) and x != x) for x in ids), bool, ids.size)
            raise ValueError(
                f"{int(missing.sum())} response(s) have no group id (None/NaN at positions "
                f"{np.flatnonzero(missing)[:8].tolist()}); every response needs the id of its prompt "
                "(verl: non_tensor_batch['uid'])"
            )
        return torch.from_numpy(index), len(codes)
    if np.issubdtype(ids.dtype, np.floating):
        raise ValueError("group ids must be integers or strings, got floats")

    # Fast path: groups laid out contiguously (verl's `repeat(interleave=True)`, TRL's chunks).
    # One comparison pass finds the runs; the ids are valid as runs iff every run head is unique.
    starts = np.empty(ids.size, dtype=bool)
    starts[0] = True
    np.not_equal(ids[1:], ids[:-1], out=starts[1:])
    heads = ids[starts]
    if np.unique(heads).size == heads.size:
        index = np.cumsum(starts, dtype=np.int64) - 1
        return torch.from_numpy(index), int(heads.size)
    _, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.astype(np.int64, copy=False).reshape(-1)
    return torch.from_numpy(inverse), int(inverse.max()) + 1


def group_index_from_size(batch_size: int, group_size: int) -> tuple[torch.Tensor, int]:
    """Group index for a batch laid out as consecutive chunks of ``group_size`` (TRL's layout)."""
    if group_size < 1 or batch_size % group_size != 0:
        raise ValueError(f"batch of {batch_size} responses does not split into groups of {group_size}")
    return torch.arange(batch_size) // group_size, batch_size // group_size


def correctness(scores: torch.Tensor, positive_threshold: float = 0.0, nan_policy: str = "wrong") -> torch.Tensor:
    """c_i = [s_i > positive_threshold] (strict), so {0,1} and {-1,+1} verifier scores both work.

    Paper, Sec. 2: a response is "positive" when the verifier accepts it. NaN scores are counted as
    wrong with a logged warning (``nan_policy="wrong"``) or raise (``"error"``); +inf / -inf compare as
    usual.
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    scores = torch.as_tensor(scores)
    nan = torch.isnan(scores)
    if nan.any():
        n = int(nan.sum())
        if nan_policy == "error":
            raise ValueError(f"{n} NaN score(s) at positions {torch.nonzero(nan).flatten()[:8].tolist()}")
        logger.warning("minimal_rl: %d NaN score(s) in the batch are counted as wrong responses", n)
    return scores > positive_threshold  # NaN > t is False


@dataclass
class GroupStatistics:
    """Per-group statistics; every tensor has shape (G,) except the ``*_per_sample`` ones (B,)."""

    size: torch.Tensor  # responses in the group
    num_correct: torch.Tensor
    kind: torch.Tensor  # ALL_CORRECT / ALL_WRONG / MIXED
    kind_per_sample: torch.Tensor
    uniform: torch.Tensor  # bool: the group's rewards are all equal (for a binary reward: kind != MIXED)
    uniform_per_sample: torch.Tensor

    @property
    def num_groups(self) -> int:
        return int(self.size.numel())

    def fractions(self) -> dict[str, float]:
        """Fraction of groups of each kind (0.0 for an empty batch)."""
        g = max(self.num_groups, 1)
        return {name: float((self.kind == code).sum()) / g for code, name in KIND_NAMES.items()}


def group_statistics(
    correct: torch.Tensor, index: torch.Tensor, num_groups: int, uniform: torch.Tensor | None = None
) -> GroupStatistics:
    """Size, correct count and kind of every group (paper, Sec. 3: all-correct / all-wrong / mixed).

    A group of one response is all-correct or all-wrong by definition. ``uniform``: (G,) groups whose rewards are all
    equal (`minimal_rl.filtering.uniform_groups`); by default the all-correct and all-wrong ones (a binary reward).
    """
    index = index.to(correct.device)
    size = torch.bincount(index, minlength=num_groups)
    num_correct = torch.bincount(index, weights=correct.to(torch.float64), minlength=num_groups).to(torch.long)
    kind = torch.full((num_groups,), MIXED, dtype=torch.long, device=correct.device)
    kind[num_correct == size] = ALL_CORRECT
    kind[num_correct == 0] = ALL_WRONG
    uniform = (kind != MIXED) if uniform is None else uniform.to(device=correct.device, dtype=torch.bool)
    return GroupStatistics(size, num_correct, kind, kind[index], uniform, uniform[index])


# --------------------------------------------------------------------------------------------
# Rewards and weights (one function per equation of the paper)
# --------------------------------------------------------------------------------------------


def signed_rewards(correct: torch.Tensor) -> torch.Tensor:
    """r_i = +1 if the response is correct else -1 (paper, Sec. 2: "r(x, a) in {-1, 1}").

    Scoring {0, 1} and passing it through would make every negative sample weigh 0 and silently turn
    Reinforce-Rej into positives-only training (the released code's trap, Minimal-RL issue #6).
    """
    return correct.to(torch.float32) * 2.0 - 1.0


def map_rewards(scores: torch.Tensor, correct: torch.Tensor, reward_mapping: str = "signed") -> torch.Tensor:
    """The reward r_i that the weights use: ``signed`` (+-1 from correctness, the paper's default) or
    ``raw`` (the verifier's score as is, the released fork's behaviour: opt-in only)."""
    if reward_mapping == "signed":
        return signed_rewards(correct)
    if reward_mapping == "raw":
        scores = torch.as_tensor(scores, dtype=torch.float32)
        if not torch.isfinite(scores).all():
            raise ValueError("reward_mapping='raw' needs finite scores; got NaN/inf (use 'signed')")
        return scores
    raise ValueError(f"reward_mapping must be one of {REWARD_MAPPINGS}, got {reward_mapping!r}")


def raft_weights(rewards: torch.Tensor) -> torch.Tensor:
    """RAFT / RAFT++: A_i = 1 on every kept (correct) response (paper, Eq. 2: SFT on accepted samples)."""
    return torch.ones_like(rewards)


def reinforce_weights(rewards: torch.Tensor) -> torch.Tensor:
    """Reinforce and Reinforce-Rej: A_i = r_i, no baseline, no normalisation (paper, Eq. 5 and Sec. 4)."""
    return rewards.clone()


def group_mean(values: torch.Tensor, index: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Per-sample mean of ``values`` over the sample's group, shape (B,)."""
    sums = torch.zeros(stats.num_groups, dtype=torch.float64, device=values.device)
    sums.index_add_(0, index, values.to(torch.float64))
    return (sums / stats.size.clamp(min=1)).to(values.dtype)[index]


def group_std(values: torch.Tensor, index: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Per-sample unbiased standard deviation of ``values`` over the sample's group, shape (B,).

    Groups of one get std 0 (the unbiased estimate is undefined; such groups are uniform).
    """
    mean = group_mean(values, index, stats).to(torch.float64)
    sq = torch.zeros(stats.num_groups, dtype=torch.float64, device=values.device)
    sq.index_add_(0, index, (values.to(torch.float64) - mean) ** 2)
    var = sq / (stats.size - 1).clamp(min=1)
    return var.sqrt().to(values.dtype)[index]


def reinforce_rej_std_weights(rewards: torch.Tensor, index: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Reinforce-Rej + std ablation: A_i = r_i / std_group(r), no centring (paper, Sec. 4 ablation).

    Only mixed groups survive this algorithm's filter and they have std > 0; uniform groups get 0.
    """
    std = group_std(rewards, index, stats)
    return torch.where(std > 0, rewards / std.clamp(min=torch.finfo(rewards.dtype).tiny), torch.zeros_like(rewards))


def mean_zero_weights(rewards: torch.Tensor, index: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Reinforce + mean zero ablation: A_i = r_i - mean_group(r) (paper, Sec. 4 ablation)."""
    return rewards - group_mean(rewards, index, stats)


def pool_centred_weights(rewards: torch.Tensor, index: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Reinforce-Ada (arXiv 2510.04996, Sec. 3): A_i = c_i - mean_pool(c), c on the 0/1 scale, no std. On a batch
    whose groups are whole pools (every response sampled for the prompt); `minimal_rl.adaptive.pool_baseline` takes
    the pool apart from the kept responses."""
    return rewards - group_mean(rewards, index, stats)


def grpo_weights(rewards: torch.Tensor, index: torch.Tensor, stats: GroupStatistics, eps: float = 1e-6) -> torch.Tensor:
    """GRPO reference: A_i = (r_i - mean_group) / (std_group + eps), unbiased std (paper, Eq. 6)."""
    return (rewards - group_mean(rewards, index, stats)) / (group_std(rewards, index, stats) + eps)


# --------------------------------------------------------------------------------------------
# Sample filters: which samples the update may use (one function per filter of the table)
# --------------------------------------------------------------------------------------------


def keep_everything(correct: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Filter ``none`` (Reinforce, Reinforce + mean zero, GRPO): nothing is dropped."""
    return torch.ones_like(correct, dtype=torch.bool)


def drop_wrong_responses(correct: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Filter ``drop_wrong`` (RAFT / RAFT++): only correct responses (rejection sampling, paper Sec. 3.1)."""
    return correct.clone()


def drop_all_wrong_groups(correct: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Filter ``drop_all_wrong`` (Reinforce + remove all wrong, paper Sec. 4): every group but the all-wrong."""
    return stats.kind_per_sample != ALL_WRONG


def drop_all_correct_groups(correct: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Filter ``drop_all_correct`` (Reinforce + remove all correct, paper Sec. 4): every group but the all-correct."""
    return stats.kind_per_sample != ALL_CORRECT


def drop_uniform_groups(correct: torch.Tensor, stats: GroupStatistics) -> torch.Tensor:
    """Filter ``drop_uniform`` (Reinforce-Rej, paper Sec. 4: "filter out prompts with all-correct and all-wrong
    responses"): only the groups whose rewards differ (GRPO's zero-variance groups leave). For a binary reward these
    are exactly the mixed groups; for any other reward, the groups with a signal for a group baseline."""
    return ~stats.uniform_per_sample


# The functions behind the names of `minimal_rl.table` (a test checks that both name the same set).
WEIGHTS: dict[str, Callable[[torch.Tensor, torch.Tensor, GroupStatistics], torch.Tensor]] = {
    "unit": lambda rewards, index, stats: raft_weights(rewards),
    "signed": lambda rewards, index, stats: reinforce_weights(rewards),
    "signed_over_std": reinforce_rej_std_weights,
    "mean_centred": mean_zero_weights,
    "grpo": grpo_weights,
    "pool_centred": pool_centred_weights,
}
FILTERS: dict[str, Callable[[torch.Tensor, GroupStatistics], torch.Tensor]] = {
    "none": keep_everything,
    "drop_wrong": drop_wrong_responses,
    "drop_all_wrong": drop_all_wrong_groups,
    "drop_all_correct": drop_all_correct_groups,
    "drop_uniform": drop_uniform_groups,
}


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def raft_loss(log_prob: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Per-token RAFT loss -A_t * log pi_theta(a_t | x, a_<t) (paper, Eq. 2: SFT on the accepted samples;
    "vanilla" in the released code): no importance ratio, no clipping. Any shape, elementwise.

    RAFT++ and the Reinforce family use the host framework's own PPO clipped surrogate."""
    return -advantages * log_prob


# --------------------------------------------------------------------------------------------
# One call for a batch
# --------------------------------------------------------------------------------------------


@dataclass
class WeightResult:
    """Output of `compute_weights` for a batch of B responses."""

    weights: torch.Tensor  # (B,) float32; 0 where ``keep`` is False
    keep: torch.Tensor  # (B,) bool: samples the update may use
    correct: torch.Tensor  # (B,) bool
    scores: torch.Tensor  # (B,) the raw scores as given
    rewards: torch.Tensor  # (B,) the mapped rewards r_i
    index: torch.Tensor  # (B,) group index
    stats: GroupStatistics
    positive_threshold: float = 0.0  # the threshold applied (the explicit one, or 0.0 for a binary reward)

    def metrics(self, response_lengths: torch.Tensor | None = None) -> dict[str, float]:
        """Selection metrics (spec: "Metrics every trainer logs each step"), un-prefixed: the shared names of
        `minimal_rl.metrics`, which both adapters log as ``metric_key(name)``.

        ``accuracy_before_filter`` and ``score_before_filter/mean`` are measured before filtering: after a drop,
        a framework's own score metric only sees kept samples (for RAFT it would always read 1.0).
        """
        b = max(int(self.keep.numel()), 1)
        m = {f"groups_{k}": v for k, v in self.stats.fractions().items()}
        m["groups_generated"] = float(self.stats.num_groups)
        m["samples_kept"] = float(self.keep.sum())
        m["samples_kept_frac"] = float(self.keep.sum()) / b
        m["accuracy_before_filter"] = float(self.correct.sum()) / b
        finite = torch.isfinite(self.scores)
        m["score_before_filter/mean"] = float(self.scores[finite].double().mean()) if finite.any() else 0.0
        kept = self.keep
        m["weight_mean"] = float(self.weights[kept].mean()) if kept.any() else 0.0
        if response_lengths is not None:
            lengths = torch.as_tensor(response_lengths).to(torch.float64)
            total = float(lengths.sum())
            m["tokens_kept"] = float(lengths[kept.to(lengths.device)].sum())
            m["tokens_kept_frac"] = m["tokens_kept"] / total if total > 0 else 0.0
        return m


def compute_weights(
    scores: torch.Tensor,
    algorithm: str,
    group_ids: Any = None,
    *,
    group_size: int | None = None,
    sample_filter: str | None = None,
    positive_threshold: float | None = None,
    reward_mapping: str = "signed",
    nan_policy: str = "wrong",
) -> WeightResult:
    """Per-sample weights and keep mask of one named algorithm for a flat batch of raw scores.

    Args:
        scores: (B,) raw verifier scores (e.g. Math-Verify's 0/1, or +-1).
        algorithm: a key of `minimal_rl.table.ALGORITHMS` (``raft``, ``raft_pp``, ``reinforce_rej``, ...).
        group_ids: (B,) prompt id of every response; or give ``group_size`` for consecutive chunks.
        sample_filter: a key of `minimal_rl.table.SAMPLE_FILTERS` replacing the algorithm's default filter.
        positive_threshold: a response is correct iff its score is strictly above this. None: 0.0 for a binary
            reward ({0,1} or {-1,+1}); any other reward then raises if a decision depends on correctness
            (`minimal_rl.filtering.resolve_threshold`).
        reward_mapping: ``signed`` (+-1, the paper; 0/1 for Reinforce-Ada's pool baseline) or ``raw`` (the fork's
            pass-through).
        nan_policy: ``wrong`` (NaN counts as wrong, logged) or ``error``.

    Returns a `WeightResult`; ``weights`` is already 0 wherever ``keep`` is False, so a framework that
    cannot drop rows ("zero" mode) may use it directly.
    """
    spec = get_algorithm(algorithm)
    chosen = get_sample_filter(sample_filter or spec.sample_filter).name
    check_filter_fits(spec.name, chosen)
    keep_fn = FILTERS[chosen]
    scores = torch.as_tensor(scores).reshape(-1)
    if not scores.dtype.is_floating_point:
        scores = scores.to(torch.float32)
    if group_ids is None and group_size is None:
        raise ValueError("compute_weights needs group_ids (one per response) or group_size")
    if group_ids is not None:
        index, num_groups = group_index(group_ids)
        if index.numel() != scores.numel():
            raise ValueError(f"{scores.numel()} scores but {index.numel()} group ids")
    else:
        index, num_groups = group_index_from_size(scores.numel(), int(group_size))
    index = index.to(scores.device)
    threshold = resolve_threshold(scores, positive_threshold, spec, chosen, reward_mapping)
    correct = correctness(scores, threshold, nan_policy)
    rewards = map_rewards(scores, correct, reward_mapping)
    if spec.weights in BINARY_SCALE_WEIGHTS and reward_mapping == "signed":
        rewards = correct.to(torch.float32)  # Reinforce-Ada's 0/1 scale
    basis = uniform_basis(spec, scores, rewards, correct, threshold_given=positive_threshold is not None)
    uniform = uniform_groups(basis, index, num_groups)
    stats = group_statistics(correct, index, num_groups, uniform)
    keep = keep_fn(correct, stats)
    weights = WEIGHTS[spec.weights](rewards, index, stats).to(torch.float32)
    weights = torch.where(keep, weights, torch.zeros_like(weights))
    return WeightResult(
        weights=weights, keep=keep, correct=correct, scores=scores, rewards=rewards, index=index, stats=stats,
        positive_threshold=threshold,
    )
