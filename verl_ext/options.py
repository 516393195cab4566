"""The ``algorithm.minimal_rl`` block of a verl config, read into one typed object.

verl passes ``config.algorithm`` to every advantage estimator. In ``main_ppo`` (legacy and v1
trainer alike) that is the raw OmegaConf ``DictConfig`` composed by Hydra, so an extra
``algorithm.minimal_rl`` block reaches the estimator untouched. verl's ``AlgoConfig`` dataclass has
no such field and no catch-all: code that converts ``config.algorithm`` with
``omega_conf_to_dataclass`` (none of verl 0.9.1's trainers do) gets a TypeError for the unknown key.
Code that builds its own ``AlgoConfig`` object simply has no block; then the defaults below apply.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from minimal_rl.algorithms import NAN_POLICIES, REWARD_MAPPINGS

CONFIG_KEY = "minimal_rl"  # algorithm.minimal_rl.*

# What happens to the samples an algorithm rejects (docs/verl-filtering.md). "drop" (default) and
# "refill" happen in the replay-buffer sampler `verl_ext.sampler` (v1 trainer); "zero" keeps them in the
# batch with weight 0 (the released fork's behaviour). The estimators zero rejected weights in every
# mode; without the sampler, drop/refill fall back to zero with one warning
# (`verl_ext.sampler.filter_mode_in_effect`).
FILTER_MODES: tuple[str, ...] = ("drop", "refill", "zero")
DEFAULT_FILTER_MODE = "drop"


@dataclass(frozen=True)
class MinimalRLOptions:
    """Options of every minimal-rl estimator (``algorithm.minimal_rl.<field>``)."""

    positive_threshold: float = 0.0  # correct iff score > threshold: works for 0/1 and -1/+1 scores
    reward_mapping: str = "signed"  # "signed": r = +-1 (the paper); "raw": the score as is (the fork)
    filter_mode: str = DEFAULT_FILTER_MODE  # see FILTER_MODES
    nan_policy: str = "wrong"  # NaN score: "wrong" (counted as wrong, logged) or "error"

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


_FIELDS = tuple(f.name for f in fields(MinimalRLOptions))


def read_options(algorithm_config: Any) -> MinimalRLOptions:
    """Options from ``config.algorithm`` (a DictConfig, a dict, verl's AlgoConfig, or None).

    A missing block gives the defaults; an unknown key inside the block is an error (a typo must not
    silently fall back to a default).
    """
    block = None
    if algorithm_config is not None:
        getter = getattr(algorithm_config, "get", None)
        block = getter(CONFIG_KEY, None) if getter is not None else getattr(algorithm_config, CONFIG_KEY, None)
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
    return MinimalRLOptions(**values)
