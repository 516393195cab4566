"""The configs of the trl_ext trainers: `SampleSelectionConfig` (every trainer) and `WeightedGRPOConfig` (RAFT and
the Reinforce family), each field with its help and checked at construction (`trl_ext.selection` holds the trainer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

from trl import GRPOConfig

from minimal_rl.adaptive import DEFAULT_MAX_ROUNDS, DEFAULT_ROUND_REPEAT
from minimal_rl.algorithms import REWARD_MAPPINGS
from minimal_rl.filtering import DEFAULT_MAX_REFILL_BATCHES
from minimal_rl.table import (
    SAMPLE_FILTERS,
    algorithms_of,
    check_filter_fits,
    check_host_sampling,
    get_algorithm,
    get_sample_filter,
)

logger = logging.getLogger(__name__)

# TRL loss types normalised by `num_items_in_batch`, the kept tokens of the whole generation batch over all ranks:
# there neither the denominator nor any other row's share depends on a masked row, so masking a sample is exactly
# dropping it. "grpo" and "dr_grpo" divide by row counts and "bnpo" by each micro-batch's token count, so masked
# rows would dilute the gradient by a fraction that changes every step.
DROP_EXACT_LOSS_TYPES = ("dapo", "cispo", "vespo")


@dataclass
class SampleSelectionConfig(GRPOConfig):
    r"""
    Fields shared by [`RaftConfig`], [`ReinforceRejConfig`] and [`FilteredGRPOConfig`]; every [`~trl.GRPOConfig`]
    field keeps its meaning.

    Parameters:
        sample_filter (`str` or `None`, *optional*, defaults to `None`):
            Which samples leave the update: `"none"`, `"drop_wrong"`, `"drop_all_wrong"`, `"drop_all_correct"` or
            `"drop_uniform"` (`minimal_rl.table.SAMPLE_FILTERS`). `None`: the algorithm's own (RAFT: `drop_wrong`,
            Reinforce-Rej: `drop_uniform`, ...).
        positive_threshold (`float` or `None`, *optional*, defaults to `None`):
            A response is correct iff its reward (the weighted sum over `reward_funcs`) is strictly above this value.
            `None`: 0.0 for a {0, 1} or {-1, +1} verifier; any other reward (a reward model's score, a length reward)
            is refused at the first step where a decision depends on correctness (`drop_wrong`, `drop_all_wrong`,
            `drop_all_correct`, the +-1 weights). `drop_uniform` compares the rewards themselves and needs none.
        reward_mapping (`str`, *optional*, defaults to `"signed"`):
            The reward r the Reinforce weights use: `"signed"` (+1 correct / -1 wrong, the paper) or `"raw"` (the
            reward as returned, the released code's behaviour, which turns Reinforce-Rej into positives-only training
            with a {0, 1} verifier).
        hard_drop (`bool`, *optional*, defaults to `False`):
            `False`: rejected samples stay in the batch with a zero loss mask (every rank keeps its shape). `True`:
            they are removed and the kept samples are re-split evenly over the ranks (padded with masked filler
            rows), saving their forward and backward passes. Both give the same gradient.
        refill (`bool`, *optional*, defaults to `False`):
            Dynamic sampling (DAPO-style; verl's `filter_mode=refill`): when the filter rejects whole groups, sample
            new prompts from `train_dataset` (whole generation batches) until the batch holds as many groups with a
            kept response as it has prompts; extra ones are discarded (`trl_ext.refill`). Needs a filter that can
            reject a whole group and a map-style dataset; not with Reinforce-Ada's adaptive rows. Composes with
            `hard_drop`.
        max_refill_batches (`int`, *optional*, defaults to `8`):
            With `refill=True`: the most refill rounds (of one generation batch of prompts each) per step; a step
            that still lacks groups then raises `minimal_rl.filtering.RefillLimitError` (as verl does). `0`: raise
            instead of refilling.
    """

    sample_filter: str | None = field(
        default=None,
        metadata={
            "help": "Which samples leave the update: none, drop_wrong, drop_all_wrong, drop_all_correct or "
            "drop_uniform. None: the algorithm's own filter.",
        },
    )
    positive_threshold: float | None = field(
        default=None,
        metadata={
            "help": "A response is correct iff its reward (weighted sum over reward_funcs) is strictly above this "
            "value. None: 0.0 for {0,1} or {-1,+1} verifiers; any other reward is refused where correctness matters."
        },
    )
    reward_mapping: str = field(
        default="signed",
        metadata={
            "help": "Reward used by the Reinforce weights: 'signed' (+1/-1 from correctness, the paper) or 'raw' "
            "(the reward as returned, the released code's pass-through)."
        },
    )
    hard_drop: bool = field(
        default=False,
        metadata={
            "help": "False: rejected samples get a zero loss mask (same shapes on every rank). True: they are "
            "removed and the kept samples re-split evenly across ranks (padded with masked filler rows), saving "
            "their compute. Same gradient either way."
        },
    )
    refill: bool = field(
        default=False,
        metadata={
            "help": "Dynamic sampling (verl's filter_mode=refill): replace the groups the filter rejects whole by "
            "groups of new prompts from train_dataset, up to max_refill_batches extra generation batches per step, "
            "until the batch holds as many groups with a kept response as it has prompts."
        },
    )
    max_refill_batches: int = field(
        default=DEFAULT_MAX_REFILL_BATCHES,
        metadata={
            "help": "refill=True only: the most extra generation batches of new prompts per step; a step still "
            "short of groups with signal raises RefillLimitError (as verl). 0: raise instead of refilling."
        },
    )
    max_rounds: int = field(
        default=DEFAULT_MAX_ROUNDS,
        metadata={"help": "Reinforce-Ada only: the most sampling rounds per batch (released default 4)."},
    )
    round_repeat: int = field(
        default=DEFAULT_ROUND_REPEAT,
        metadata={
            "help": "Reinforce-Ada only: new responses per still-active prompt and round (released default 8); at "
            "least num_generations, the responses kept per prompt."
        },
    )

    algorithm: str = field(
        default="grpo",
        metadata={"help": "The algorithm of minimal_rl.table this config trains (each config accepts its family)."},
    )
    families: ClassVar[tuple[str, ...]] = ("grpo",)  # the minimal_rl.table families this config can train

    @property
    def sample_filter_in_effect(self) -> str:
        return self.sample_filter or get_algorithm(self.algorithm).sample_filter

    @property
    def drops_samples(self) -> bool:
        return self.sample_filter_in_effect != "none"

    def __post_init__(self):
        super().__post_init__()
        self.algorithm = get_algorithm(self.algorithm).name
        check_host_sampling(self.algorithm, "trl_ext")  # Reinforce-Ada's rows need adaptive sampling
        allowed = algorithms_of(*self.families)
        if self.algorithm not in allowed:
            raise ValueError(
                f"{type(self).__name__}.algorithm must be one of {allowed}, got {self.algorithm!r} (trl_ext.build_trainer "
                "picks the right config for any algorithm)"
            )
        if self.sample_filter is not None:
            self.sample_filter = get_sample_filter(self.sample_filter).name
        check_filter_fits(self.algorithm, self.sample_filter_in_effect)
        if self.reward_mapping not in REWARD_MAPPINGS:
            raise ValueError(f"reward_mapping must be one of {REWARD_MAPPINGS}, got {self.reward_mapping!r}")
        if self.drops_samples and self.loss_type not in DROP_EXACT_LOSS_TYPES:
            raise ValueError(
                f"loss_type={self.loss_type!r} cannot be used with sample filter {self.sample_filter_in_effect!r}, "
                "which leaves samples out of the update: under that aggregation the masked samples still count in "
                "the denominator and dilute the gradient by a fraction that changes every step. Use "
                f"loss_type='dapo' (or another of {DROP_EXACT_LOSS_TYPES}: the token sum over the kept tokens of the "
                "whole generation batch, exactly as if the samples had been dropped)."
            )
        if self.hard_drop and not self.drops_samples:
            logger.warning("hard_drop=True has no effect: sample filter 'none' keeps every sample")
        self._check_rounds()
        self._check_refill()

    def _check_refill(self) -> None:
        if not self.refill:
            if self.max_refill_batches != DEFAULT_MAX_REFILL_BATCHES:
                raise ValueError("max_refill_batches applies to refill=True only")
            return
        sample_filter = self.sample_filter_in_effect
        if not SAMPLE_FILTERS[sample_filter].can_reject_whole_groups:
            raise ValueError(
                f"refill=True replaces the groups the sample filter rejects whole, and filter {sample_filter!r} "
                f"({self.algorithm!r}) rejects none: nothing would ever be refilled. Set a sample_filter that drops "
                "groups (drop_uniform, drop_all_wrong, drop_all_correct, drop_wrong) or refill=False."
            )
        if self.samples_adaptively:
            raise ValueError(
                f"refill=True is not supported with {self.algorithm!r}: Reinforce-Ada's adaptive rounds already "
                "resample the prompts without signal. Use refill=False (uniform pools are dropped), or "
                "algorithm='reinforce_rej' with refill=True."
            )
        if self.max_refill_batches < 0:
            raise ValueError(f"max_refill_batches must be >= 0, got {self.max_refill_batches}")

    @property
    def samples_adaptively(self) -> bool:
        """Whether training batches are sampled in Reinforce-Ada's rounds (the algorithm has an exit rule)."""
        return get_algorithm(self.algorithm).adaptive

    def _check_rounds(self) -> None:
        if not self.samples_adaptively:
            if (self.max_rounds, self.round_repeat) != (DEFAULT_MAX_ROUNDS, DEFAULT_ROUND_REPEAT):
                raise ValueError(
                    f"max_rounds and round_repeat apply to adaptive sampling only (reinforce_ada_balance, "
                    f"reinforce_ada_pos); {self.algorithm!r} samples a fixed group of num_generations responses"
                )
            return
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        if self.num_generations is None or self.round_repeat < self.num_generations:
            raise ValueError(
                f"round_repeat={self.round_repeat} must be >= num_generations={self.num_generations}: every prompt "
                "keeps num_generations responses of its pool, so its first round must already give that many"
            )


@dataclass
class WeightedGRPOConfig(SampleSelectionConfig):
    r"""
    [`SampleSelectionConfig`] for the trainers whose advantages are the algorithm's weights ([`RaftConfig`],
    [`ReinforceRejConfig`]). Defaults that differ from [`~trl.GRPOConfig`]: `num_generations=4` (the paper's n),
    `scale_rewards="none"` (the weights come from the algorithm; any other value is rejected) and
    `use_bias_correction_kl=False` (the paper's plain k3 KL, verl's `low_var_kl`).
    """

    num_generations: int | None = field(
        default=4,
        metadata={"help": "Responses sampled per prompt (the paper's n = 4)."},
    )
    scale_rewards: str = field(
        default="none",
        metadata={
            "help": "Must be 'none': the per-sample weights come from the algorithm (minimal_rl), not from TRL's "
            "reward scaling. For the std-normalised ablation use ReinforceRejConfig(algorithm='reinforce_rej_std')."
        },
    )

    use_bias_correction_kl: bool = field(
        default=False,
        metadata={
            "help": "False (here; TRL's default is True): the KL term is plain k3, as verl's low_var_kl in the "
            "paper's runs. True multiplies it by the differentiable ratio pi/pi_old, which adds k3 * grad log pi to "
            "the KL gradient even on-policy (a different objective, same value)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.scale_rewards != "none":
            raise ValueError(
                f"scale_rewards={self.scale_rewards!r} is not supported by {type(self).__name__}: the weights come "
                "from the algorithm, so TRL's reward scaling would be silently ignored. Leave scale_rewards='none' "
                "(for the std-normalised ablation use ReinforceRejConfig(algorithm='reinforce_rej_std'); for GRPO's "
                "own advantages with a sample filter, FilteredGRPOConfig)."
            )
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                f"multi_objective_aggregation={self.multi_objective_aggregation!r} is not supported: correctness is "
                "judged on the weighted sum of the reward functions (the 'sum_then_normalize' sum, without TRL's "
                "normalisation)."
            )
