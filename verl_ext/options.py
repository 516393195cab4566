"""The ``algorithm.minimal_rl`` block of a verl config, read once into `MinimalRLOptions`.

verl passes ``config.algorithm`` to every advantage estimator. In ``main_ppo`` (legacy and v1 trainer
alike) that is the raw OmegaConf ``DictConfig`` composed by Hydra, so an extra ``algorithm.minimal_rl``
block reaches the estimator untouched. The replay-buffer sampler gets the same block through
``trainer.v1.sampler.sampler_kwargs`` (verl hands a custom sampler nothing else), and both read it with
`read_options`, so the two can never disagree.

verl's ``AlgoConfig`` dataclass has no such field and no catch-all: code that converts ``config.algorithm``
with ``omega_conf_to_dataclass`` (none of verl 0.9.1's trainers do) gets a TypeError for the unknown key.
Code that builds its own ``AlgoConfig`` object simply has no block; then the defaults below apply.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from minimal_rl.adaptive import DEFAULT_MAX_ROUNDS, DEFAULT_ROUND_REPEAT
from minimal_rl.algorithms import NAN_POLICIES, REWARD_MAPPINGS
from minimal_rl.table import ALGORITHMS, check_filter_fits, check_host_sampling, get_sample_filter, is_adaptive

CONFIG_KEY = "minimal_rl"  # algorithm.minimal_rl.*

# What happens to the samples the sample filter rejects (docs/verl-filtering.md). "drop" (default) and
# "refill" happen in the replay-buffer sampler (v1 trainer); "zero" keeps them in the batch with weight 0
# (the released fork's behaviour). The estimators zero rejected weights in every mode; where the sampler cannot
# run (verl < 0.9, legacy trainer, no preset) the run is in zero mode and says so once at config time
# (hydra_plugins/minimal_rl_searchpath/filter_notice.py).
FILTER_MODES: tuple[str, ...] = ("drop", "refill", "zero")
DEFAULT_FILTER_MODE = "drop"


@dataclass(frozen=True)
class MinimalRLOptions:
    """Options of every minimal-rl estimator and of the sampler (``algorithm.minimal_rl.<field>``)."""

    positive_threshold: float | None = None  # correct iff score > threshold; None: 0.0, for 0/1 or -1/+1 scores only
    reward_mapping: str = "signed"  # "signed": r = +-1 (the paper); "raw": the score as is (the fork)
    filter_mode: str = DEFAULT_FILTER_MODE  # see FILTER_MODES
    nan_policy: str = "wrong"  # NaN score: "wrong" (counted as wrong, logged) or "error"
    sample_filter: str | None = None  # a minimal_rl.table.SAMPLE_FILTERS name; None: the algorithm's default
    max_rounds: int = DEFAULT_MAX_ROUNDS  # Reinforce-Ada only (verl_ext.adaptive_rollout): sampling rounds at most
    round_repeat: int = DEFAULT_ROUND_REPEAT  # Reinforce-Ada only: new responses per active prompt and round

    def __post_init__(self) -> None:
        if self.reward_mapping not in REWARD_MAPPINGS:
            raise ValueError(f"algorithm.{CONFIG_KEY}.reward_mapping must be one of {REWARD_MAPPINGS}, got {self.reward_mapping!r}")
        if self.filter_mode not in FILTER_MODES:
            raise ValueError(
                f"algorithm.{CONFIG_KEY}.filter_mode={self.filter_mode!r} is not available; "
                f"this installation supports {FILTER_MODES}"
            )
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"algorithm.{CONFIG_KEY}.nan_policy must be one of {NAN_POLICIES}, got {self.nan_policy!r}")
        if self.max_rounds < 1 or self.round_repeat < 1:
            raise ValueError(
                f"algorithm.{CONFIG_KEY}.max_rounds and round_repeat must be >= 1, got {self.max_rounds} and {self.round_repeat}"
            )
        if self.sample_filter is not None:
            try:
                get_sample_filter(self.sample_filter)
            except ValueError as err:
                raise ValueError(f"algorithm.{CONFIG_KEY}.sample_filter: {err}") from None


_FIELDS = tuple(f.name for f in fields(MinimalRLOptions))

# verl's estimators that weigh a response against its prompt's group (uid): a sample filter has a meaning there.
# Not gae (a critic trained on every sample), reinforce_plus_plus (batch whitening) or remax (a greedy baseline).
GROUPED_VERL_ESTIMATORS = (
    "grpo", "grpo_vectorized", "grpo_passk", "gdpo", "rloo", "rloo_vectorized", "reinforce_plus_plus_baseline",
    "opo", "gpg", "optimal_token_baseline", "tir_optimal_token_baseline",
)


def sample_filter_in_effect(estimator: str, options: MinimalRLOptions) -> tuple[str, str]:
    """(table algorithm whose weights and default filter apply, sample filter in effect) for a verl estimator.

    minimal-rl's estimators carry their table names; for verl's own estimators the advantages stay verl's and the
    filter (default ``none``) only chooses which samples reach them, which needs groups of responses to one prompt.
    """
    estimator = str(estimator).lower()
    check_host_sampling(estimator, "verl_ext")  # Reinforce-Ada's rows need adaptive sampling
    if not is_adaptive(estimator) and (options.max_rounds, options.round_repeat) != (DEFAULT_MAX_ROUNDS, DEFAULT_ROUND_REPEAT):
        raise ValueError(
            f"algorithm.{CONFIG_KEY}.max_rounds and round_repeat apply to adaptive sampling only "
            f"(reinforce_ada_balance, reinforce_ada_pos), not to {estimator!r}: they would be ignored"
        )
    if estimator in ALGORITHMS and ALGORITHMS[estimator].family != "grpo":
        sample_filter = options.sample_filter or ALGORITHMS[estimator].sample_filter
        check_filter_fits(estimator, sample_filter)
        return estimator, sample_filter
    sample_filter = options.sample_filter or "none"
    if sample_filter != "none" and estimator not in GROUPED_VERL_ESTIMATORS:
        raise ValueError(
            f"algorithm.{CONFIG_KEY}.sample_filter={sample_filter!r} needs an estimator that compares the responses "
            f"of one prompt (a group); {estimator!r} has none (gae trains a critic on every sample, "
            "reinforce_plus_plus / remax use batch or greedy baselines), so a group filter has no defined meaning "
            f"there. Use one of {GROUPED_VERL_ESTIMATORS} or minimal-rl's own estimators, or sample_filter=none."
        )
    # verl's own estimators normalise within the group, and verl computes them on the kept rows only
    check_filter_fits("grpo", sample_filter)
    return "grpo", sample_filter


def read_options(algorithm_config: Any) -> MinimalRLOptions:
    """Options from ``config.algorithm`` (a DictConfig, a dict, verl's AlgoConfig, or None).

    A missing block gives the defaults; an unknown key inside the block is an error (a typo must not
    silently fall back to a default).
    """
    block = None
    if algorithm_config is not None:
        getter = getattr(algorithm_config, "get", None)
        block = getter(CONFIG_KEY, None) if getter is not None else getattr(algorithm_config, CONFIG_KEY, None)
    return options_from_block(block)


def options_from_block(block: Any) -> MinimalRLOptions:
    """Options from the ``algorithm.minimal_rl`` block itself (a DictConfig, a dict, or None)."""
    if block is None:
        return MinimalRLOptions()
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(block, DictConfig):
            block = OmegaConf.to_container(block, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf always ships with verl
        pass
    if not isinstance(block, dict):
        raise TypeError(f"algorithm.{CONFIG_KEY} must be a mapping, got {type(block).__name__}")
    unknown = sorted(set(block) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in algorithm.{CONFIG_KEY}; valid keys: {list(_FIELDS)}")
    values = {k: v for k, v in block.items() if v is not None}
    if "positive_threshold" in values:
        values["positive_threshold"] = float(values["positive_threshold"])
    for key in ("max_rounds", "round_repeat"):
        if key in values:
            values[key] = int(values[key])
    for key in ("filter_mode", "sample_filter", "reward_mapping", "nan_policy"):
        if key in values:
            values[key] = str(values[key]).lower()
    return MinimalRLOptions(**values)
