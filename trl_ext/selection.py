"""What every trl_ext trainer shares: GRPOTrainer with a sample filter, and (optionally) minimal_rl's weights.

Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection Sampling to Reinforce" (arXiv 2504.11343).
After GRPOTrainer has generated and scored a batch, `minimal_rl.algorithms.compute_weights` decides, on the rewards
gathered from every process (a group split across ranks is judged whole), which samples the update may use
and, for RAFT and the Reinforce family, replaces GRPO's advantages by the algorithm's weights. The rejected
samples are left out of the loss. Generation (vLLM or transformers), reward functions, the loss, KL, logging and
checkpoints are GRPOTrainer's own. No group statistic is computed here.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import get_config_model_id

from minimal_rl.algorithms import REWARD_MAPPINGS, compute_weights
from minimal_rl.adaptive import DEFAULT_MAX_ROUNDS, DEFAULT_ROUND_REPEAT
from minimal_rl.filtering import EmptySelectionWatch
from minimal_rl.metrics import PREFIX as METRIC_PREFIX
from minimal_rl.metrics import metric_key
from minimal_rl.table import (
    SAMPLE_FILTERS,
    algorithms_of,
    check_filter_fits,
    check_host_sampling,
    get_algorithm,
    get_sample_filter,
)

from .adaptive import AdaptiveBatch, check_adaptive_supported, sample_adaptively
from .hard_drop import LOSS_MASK_KEY, drop_rejected_rows
from .version import check_liger_path, check_trl_runs_on

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


class SampleSelectionTrainer(GRPOTrainer):
    """GRPOTrainer whose rejected samples are left out of the update (and, with ``uses_algorithm_weights``, whose
    advantages are the algorithm's weights).

    Hooks overridden w.r.t. [`~trl.GRPOTrainer`], and why:
      - `_calculate_rewards`: keeps the rewards GRPOTrainer gathers from every process, so the filter judges each
        prompt's group whole even when it straddles ranks (the return value is unchanged);
      - `_generate_and_score_completions`: after GRPOTrainer's own, computes the keep mask (and the weights) with
        `minimal_rl.algorithms.compute_weights`, zeroes the loss mask of rejected samples (or removes them with
        `hard_drop=True`), recounts `num_items_in_batch` over the kept tokens, and logs `sample_filter/*` metrics;
      - `_generate` (Reinforce-Ada's rows only, training): samples the batch's prompts in rounds through
        GRPOTrainer's own `_generate` and `_calculate_rewards` (`trl_ext.adaptive`) and returns the n kept
        responses per prompt; their rewards come from the rounds and their weights from the whole pool;
      - `_generate_single_turn` (during those rounds only): hands TRL `round_repeat` instead of `num_generations` as
        the number of times each prompt is repeated in the rows, which TRL's vLLM server mode relies on.
    """

    config_class: type[SampleSelectionConfig] = SampleSelectionConfig
    uses_algorithm_weights = False  # True: the advantages become the algorithm's weights (WeightedGRPOTrainer)
    _tag_names = ["trl", "minimal-rl"]
    _name = "SampleSelection"

    def __init__(self, model: Any, reward_funcs: Any = None, args: SampleSelectionConfig | None = None, **kwargs: Any):
        if args is None:
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = self.config_class(f"{model_name.split('/')[-1]}-{self._name}")
        if not isinstance(args, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__} (a GRPOConfig subclass with the "
                f"algorithm's fields), got {type(args).__name__}"
            )
        check_liger_path(args.use_liger_kernel, GRPOTrainer)
        check_trl_runs_on(args.device.type)
        super().__init__(model, reward_funcs, args=args, **kwargs)
        if len(self.reward_funcs) > 1:
            logger.warning(
                "%s: %d reward functions; a response is correct iff the weighted sum of their rewards "
                "(reward_weights) is > positive_threshold=%s (None: 0.0 if that sum is binary)",
                type(self).__name__, len(self.reward_funcs), args.positive_threshold,
            )
        self._gathered_rewards_per_func: torch.Tensor | None = None
        self._empty_watch = EmptySelectionWatch()  # says loudly when the filter keeps nothing for several steps
        self._adaptive_inputs: list | None = None  # the generation batch's rows while its rounds run
        self._adaptive_batch: AdaptiveBatch | None = None
        self._round_group: int | None = None  # while a round generates: how many times each prompt is in its rows
        if args.samples_adaptively:
            check_adaptive_supported(self)

    def _generate(self, prompts):
        if self._adaptive_inputs is None:
            return super()._generate(prompts)
        batch = sample_adaptively(
            self, self._adaptive_inputs, prompts,
            generate=self._generate_round,
            score=super()._calculate_rewards,
        )
        self._adaptive_batch = batch
        for column, values in batch.extra_logs.items():
            self._pending_extra_logs[column] = values
        return batch.generation

    def _generate_round(self, prompts, group: int):
        """GRPOTrainer's `_generate` for one of Reinforce-Ada's rounds, whose rows hold each prompt ``group`` times
        in a row (not `num_generations`)."""
        self._round_group = group
        try:
            return super()._generate(prompts)
        finally:
            self._round_group = None

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs):
        # TRL's vLLM server mode asks for num_generations completions of every num_generations-th gathered row
        # (trl_ext.adaptive.served_rows): in a round that size is round_repeat. Colocate and transformers ignore it.
        if self._round_group is not None:
            num_generations = self._round_group
        return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self._adaptive_batch is not None:  # scored during the rounds: reward functions are not called twice
            rewards_per_func = self._adaptive_batch.rewards_per_func.to(self.accelerator.device)
        else:
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _scores_from_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """One score per completion: the weighted sum over reward functions (NaN where all returned None)."""
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        scores = (rewards_per_func * weights).nansum(dim=1)
        scores[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan  # counted as wrong by minimal_rl, logged
        return scores

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        self._adaptive_inputs = inputs if mode == "train" and self.args.samples_adaptively else None
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            adaptive, self._adaptive_inputs, self._adaptive_batch = self._adaptive_batch, None, None
        rewards_per_func, self._gathered_rewards_per_func = self._gathered_rewards_per_func, None
        if rewards_per_func is None:
            raise RuntimeError("GRPOTrainer did not compute rewards through _calculate_rewards (TRL changed?)")

        args = self.args
        result = compute_weights(
            self._scores_from_rewards(rewards_per_func).float().cpu(),
            args.algorithm,
            group_size=self.num_generations if mode == "train" else self.num_generations_eval,
            sample_filter=args.sample_filter,
            positive_threshold=args.positive_threshold,
            reward_mapping=args.reward_mapping,
        )
        if adaptive is not None:  # Reinforce-Ada: the baseline is the whole pool's, not the n kept responses'
            weights = torch.where(result.keep, adaptive.advantages.to(result.weights.dtype), torch.zeros_like(result.weights))
            result = dataclasses.replace(result, weights=weights)
            for name, value in adaptive.rounds.metrics().items():
                self._metrics[mode][metric_key(name)].append(value)
        device = output["advantages"].device
        local_rows = output["completion_ids"].size(0)
        rank_rows = slice(self.accelerator.process_index * local_rows, (self.accelerator.process_index + 1) * local_rows)
        keep = result.keep[rank_rows].to(device)
        if self.uses_algorithm_weights:
            output["advantages"] = result.weights[rank_rows].to(device=device, dtype=output["advantages"].dtype)

        # Leave rejected rows out of the loss through the per-token loss mask GRPOTrainer multiplies into
        # completion_mask (its `tool_mask`), so their attention and every other row stay untouched.
        completion_mask = output["completion_mask"]
        loss_mask = output.get(LOSS_MASK_KEY)
        if loss_mask is None:
            loss_mask = torch.ones_like(completion_mask)
        response_tokens = (completion_mask * loss_mask).sum(dim=1)
        output[LOSS_MASK_KEY] = loss_mask * keep.unsqueeze(1).to(loss_mask.dtype)
        # The drop-exact losses divide by this: the kept tokens of the whole generation batch, over all ranks.
        output["num_items_in_batch"] = self.accelerator.gather((completion_mask * output[LOSS_MASK_KEY]).sum()).sum()

        if mode == "train" and self.accelerator.is_main_process:
            self._empty_watch.observe(
                int(result.keep.sum()), result.scores, args.sample_filter_in_effect, result.positive_threshold, "trl"
            )
        lengths = self.accelerator.gather(response_tokens).cpu()
        for name, value in result.metrics(lengths).items():
            self._metrics[mode][METRIC_PREFIX + name].append(value)
        self._log_selection(result)

        if args.hard_drop and mode == "train" and SAMPLE_FILTERS[args.sample_filter_in_effect].name != "none":
            output, plan = drop_rejected_rows(
                output,
                keep,
                self.accelerator,
                rows_multiple=args.steps_per_generation,
                pad_token_id=self._tokenizer.pad_token_id,
                trim=self.pad_to_multiple_of is None,  # trimming would break a padded width multiple
            )
            self._metrics[mode][METRIC_PREFIX + "rows_per_rank"].append(float(plan.rows_per_rank))
            self._metrics[mode][METRIC_PREFIX + "filler_rows"].append(float(plan.num_filler_total))
        return output

    def _log_selection(self, result) -> None:
        """Completions table: the weights replace GRPO's advantages (when they do), and a `kept` column is added."""
        if self.uses_algorithm_weights:
            weights = result.weights.tolist()
            advantages = self._logs["advantages"]
            for _ in range(min(len(weights), len(advantages))):
                advantages.pop()
            advantages.extend(weights)
        self._logs["extra"]["kept"].extend(result.keep.tolist())


class WeightedGRPOTrainer(SampleSelectionTrainer):
    """[`SampleSelectionTrainer`] whose advantages are the algorithm's weights (the base of [`RaftTrainer`] and
    [`ReinforceRejTrainer`]); it overrides no further hook."""

    config_class = WeightedGRPOConfig
    uses_algorithm_weights = True
