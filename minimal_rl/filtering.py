"""What a sample filter means for the reward it is given, decided once for both hosts.

The paper's filters were written for a verifier's 0/1 or -1/+1 scores (Xiong et al., arXiv 2504.11343, Sec. 3-4).
Users also pass reward models (scores like -1.6 ... -4.2) and shaped rewards (``len(completion)``). There:

- a *uniform* group (``drop_uniform``) is one whose rewards are all equal, zero variance, so it carries no signal
  for a group baseline (`uniform_groups`). For a binary reward that is exactly "all correct or all wrong", and where
  the user gives a threshold the Reinforce rows keep the paper's meaning, all correct or all wrong (`uniform_basis`);
- a *correct* response is ``score > positive_threshold`` (``drop_wrong``, ``drop_all_wrong``, ``drop_all_correct``
  and the +-1 weights of the Reinforce rows). The default threshold 0.0 fits binary rewards only: for any other
  reward `resolve_threshold` refuses to guess and asks for an explicit ``positive_threshold``;
- a filter that keeps nothing for several steps in a row is said loudly, with the reward range it saw
  (`EmptySelectionWatch`), by whichever host runs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from minimal_rl.table import THRESHOLD_FILTERS, AlgorithmSpec

logger = logging.getLogger(__name__)

BINARY_REWARD_SETS = (frozenset((0.0, 1.0)), frozenset((-1.0, 1.0)))
DEFAULT_THRESHOLD = 0.0  # the threshold a binary reward gets: {0,1} and {-1,+1} both split at 0
EMPTY_STEPS_BEFORE_WARNING = 3
# Refill (DAPO-style dynamic sampling, both hosts): the most extra prompt batches one step may sample to replace
# the groups the filter rejects whole; past it `RefillLimitError` (DAPO's own cap raises as well).
DEFAULT_MAX_REFILL_BATCHES = 8


class RefillLimitError(RuntimeError):
    """Raised when refilling rejected groups needs more extra prompts than ``max_refill_batches`` allows."""


def is_binary_reward(scores: torch.Tensor) -> bool:
    """Whether the finite scores all lie in {0, 1} or all in {-1, +1} (a verifier's scores; NaN is ignored)."""
    values = torch.as_tensor(scores).reshape(-1)
    values = values[torch.isfinite(values)]
    seen = frozenset(float(v) for v in torch.unique(values).tolist())
    return any(seen <= allowed for allowed in BINARY_REWARD_SETS)


def uniform_on_raw_reward(spec: AlgorithmSpec) -> bool:
    """Whether "uniform" is judged on the raw reward (the ``grpo`` row: the host's own advantages weigh it) rather
    than on the mapped reward r the table's weights use (+-1 or 0/1 from correctness under ``signed``, the raw
    reward under ``raw``)."""
    return spec.family == "grpo"


def uniform_basis(
    spec: AlgorithmSpec, scores: torch.Tensor, rewards: torch.Tensor, correct: torch.Tensor, threshold_given: bool
) -> torch.Tensor:
    """The values whose equality within a group makes it uniform: the raw reward for the ``grpo`` row (GRPO's
    advantages are 0 exactly there); correctness where a threshold applies (given, or a binary reward: the paper's
    all-correct / all-wrong); otherwise the mapped reward r (``raw`` mapping of a non-binary reward)."""
    if uniform_on_raw_reward(spec):
        return scores
    if threshold_given or is_binary_reward(scores):
        return correct.to(torch.float32)
    return rewards


def needs_threshold(spec: AlgorithmSpec, sample_filter: str, reward_mapping: str) -> bool:
    """Whether a decision of this (algorithm, filter, reward mapping) depends on ``score > positive_threshold``:
    the threshold filters, and, under the ``signed`` mapping, weights from correctness or a uniformity judged on it
    (RAFT's unit weights with ``none`` decide nothing; the ``grpo`` row judges on the raw reward)."""
    if sample_filter in THRESHOLD_FILTERS:
        return True
    if reward_mapping != "signed" or uniform_on_raw_reward(spec):
        return False
    return spec.weights != "unit" or sample_filter == "drop_uniform"


def _range(scores: torch.Tensor) -> str:
    finite = scores[torch.isfinite(scores)]
    if finite.numel() == 0:
        return "no finite reward"
    return f"{float(finite.min()):.4g} … {float(finite.max()):.4g}"


def resolve_threshold(
    scores: torch.Tensor, positive_threshold: float | None, spec: AlgorithmSpec, sample_filter: str, reward_mapping: str
) -> float:
    """The threshold to apply: the explicit one; else 0.0 when the reward is binary or nothing depends on it.

    Raises ValueError for a non-binary reward whose correctness matters and no explicit threshold: "reward > 0.0"
    would make every ``len(completion)`` response correct and every reward-model response scoring -1.6 ... -4.2
    wrong, so the filter would silently train on everything or on nothing.
    """
    if positive_threshold is not None:
        return float(positive_threshold)
    if not needs_threshold(spec, sample_filter, reward_mapping) or is_binary_reward(scores):
        return DEFAULT_THRESHOLD
    scores = torch.as_tensor(scores).reshape(-1)
    why = (
        f"sample filter {sample_filter!r} keeps or drops by correctness"
        if sample_filter in THRESHOLD_FILTERS
        else f"{spec.name!r} under reward_mapping={reward_mapping!r} weighs and judges groups by correctness"
    )
    raise ValueError(
        f"minimal-rl: the rewards are not binary (this batch: {_range(scores)}, "
        f"{int(torch.unique(scores[torch.isfinite(scores)]).numel())} distinct values) and no positive_threshold is "
        f"set, but {why}: a response is correct iff its reward > positive_threshold, and the default 0.0 only fits "
        "{0, 1} or {-1, +1} rewards. Set positive_threshold to the reward above which a response counts as correct "
        "(TRL: the config's positive_threshold; verl: algorithm.minimal_rl.positive_threshold), or use a filter that "
        "compares the rewards themselves (drop_uniform with GRPO's advantages, or reward_mapping='raw')."
    )


def uniform_groups(values: torch.Tensor, index: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(G,) bool: the groups whose values are all equal (zero variance: no signal for a group baseline).

    A NaN value (a reward that could not be computed, counted as wrong) compares as -inf. A group of one response is
    uniform. For a binary reward this is exactly "all correct or all wrong" (Reinforce-Rej's rejected groups, paper
    Sec. 4)."""
    values = torch.nan_to_num(torch.as_tensor(values).to(torch.float64), nan=float("-inf"))
    index = index.to(values.device)
    high = torch.full((num_groups,), float("-inf"), dtype=torch.float64, device=values.device)
    low = torch.full((num_groups,), float("inf"), dtype=torch.float64, device=values.device)
    high = high.scatter_reduce(0, index, values, reduce="amax")
    low = low.scatter_reduce(0, index, values, reduce="amin")
    return high == low


@dataclass
class EmptySelectionWatch:
    """Counts consecutive steps where a filter keeps no sample, and says so loudly (a run that trains on nothing is
    never silent). One per trainer; call `observe` once per training step with the step's scores.

    Warns when the streak reaches ``patience`` steps, then at 2x, 4x, ... ``patience`` (not every step)."""

    patience: int = EMPTY_STEPS_BEFORE_WARNING
    streak: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    warnings: list[str] = field(default_factory=list)  # every message given, for the host's logs and tests

    def observe(
        self, samples_kept: int, scores: torch.Tensor, sample_filter: str, positive_threshold: float, host: str
    ) -> str | None:
        """Record one step; return (and log at WARNING) the message when one is due, else None."""
        if samples_kept > 0:
            self.streak, self.low, self.high = 0, float("inf"), float("-inf")
            return None
        scores = torch.as_tensor(scores).reshape(-1)
        finite = scores[torch.isfinite(scores)]
        if finite.numel():
            self.low, self.high = min(self.low, float(finite.min())), max(self.high, float(finite.max()))
        self.streak += 1
        periods, rest = divmod(self.streak, self.patience)
        if periods == 0 or rest or periods & (periods - 1):  # due at patience x 1, 2, 4, 8, ...
            return None
        seen = f"{self.low:.4g} … {self.high:.4g}" if self.low <= self.high else "no finite reward"
        message = (
            f"minimal-rl ({host}): sample filter {sample_filter!r} kept NO sample for {self.streak} steps in a row: "
            f"the updates train on nothing. Rewards seen in those steps: {seen}; "
            f"positive_threshold={positive_threshold:g} "
            "(correct iff reward > threshold). If the reward is not a 0/1 or -1/+1 verifier, set positive_threshold "
            "to fit it; if the task is too hard or too easy for the model, use a filter that keeps more."
        )
        self.warnings.append(message)
        logger.warning("%s\n%s\n%s", "!" * 80, message, "!" * 80)
        return message
