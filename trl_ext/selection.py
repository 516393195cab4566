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
from typing import Any

import torch
from trl import GRPOTrainer
from trl.trainer.utils import get_config_model_id

from minimal_rl.algorithms import WeightResult, compute_weights
from minimal_rl.filtering import EmptySelectionWatch
from minimal_rl.metrics import PREFIX as METRIC_PREFIX
from minimal_rl.metrics import metric_key
from minimal_rl.table import SAMPLE_FILTERS

from .adaptive import AdaptiveBatch, check_adaptive_supported, sample_adaptively
from .hard_drop import LOSS_MASK_KEY, drop_rejected_rows
from .refill import RefillStream, generate_with_refill
from .selection_config import DROP_EXACT_LOSS_TYPES, SampleSelectionConfig, WeightedGRPOConfig
from .version import check_liger_path, check_trl_runs_on

logger = logging.getLogger(__name__)

__all__ = [
    "DROP_EXACT_LOSS_TYPES", "SampleSelectionConfig", "SampleSelectionTrainer",
    "WeightedGRPOConfig", "WeightedGRPOTrainer",
]

class SampleSelectionTrainer(GRPOTrainer):
    """GRPOTrainer whose rejected samples are left out of the update (and, with ``uses_algorithm_weights``, whose
    advantages are the algorithm's weights).

    Hooks overridden w.r.t. [`~trl.GRPOTrainer`], and why:
      - `_calculate_rewards`: keeps the rewards GRPOTrainer gathers from every process, so the filter judges each
        prompt's group whole even when it straddles ranks (the return value is unchanged);
      - `_generate_and_score_completions`: after GRPOTrainer's own, computes the keep mask (and the weights) with
        `minimal_rl.algorithms.compute_weights`, zeroes the loss mask of rejected samples (or removes them with
        `hard_drop=True`), recounts `num_items_in_batch` over the kept tokens, and logs `sample_filter/*` metrics;
        with `refill=True` (training) it first runs GRPOTrainer's own once more per refill round, on new prompts, until
        the batch holds as many groups with signal as it had prompts (`trl_ext.refill`);
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
        self._refill_stream = RefillStream(self.train_dataset, args.seed) if args.refill else None

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

    def _weigh(self, rewards_per_func: torch.Tensor, mode: str) -> WeightResult:
        """The algorithm's keep mask and weights for the rewards of a whole (gathered) generation batch."""
        return self._weigh_scores(self._scores_from_rewards(rewards_per_func).float().cpu(), mode)

    def _weigh_scores(self, scores: torch.Tensor, mode: str) -> WeightResult:
        args = self.args
        return compute_weights(
            scores,
            args.algorithm,
            group_size=self.num_generations if mode == "train" else self.num_generations_eval,
            sample_filter=args.sample_filter,
            positive_threshold=args.positive_threshold,
            reward_mapping=args.reward_mapping,
        )

    def _take_gathered_rewards(self) -> torch.Tensor:
        rewards_per_func, self._gathered_rewards_per_func = self._gathered_rewards_per_func, None
        if rewards_per_func is None:
            raise RuntimeError("GRPOTrainer did not compute rewards through _calculate_rewards (TRL changed?)")
        return rewards_per_func

    def _score_refill_round(self, rows):
        """One round of `trl_ext.refill`: GRPOTrainer's own generation and scoring of ``rows``, then the weights."""
        output = super()._generate_and_score_completions(rows)
        result = self._weigh(self._take_gathered_rewards(), "train")
        loss_mask = output.get(LOSS_MASK_KEY)
        tokens = output["completion_mask"] if loss_mask is None else output["completion_mask"] * loss_mask
        return output, result, self.accelerator.gather(tokens.sum(dim=1)).cpu()

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        args = self.args
        lengths = None  # response tokens of every generated row, when refill measured them over its rounds
        if mode == "train" and self._refill_stream is not None:
            refill = generate_with_refill(
                self, inputs, self._refill_stream, self._score_refill_round, lambda s: self._weigh_scores(s, mode)
            )
            output, result, lengths = refill.output, refill.result, refill.lengths
            batch_rows = refill.chosen  # the rows of `result` the batch holds
            for key, value in refill.metrics().items():
                self._metrics[mode][key].append(value)
            adaptive = None
        else:
            self._adaptive_inputs = inputs if mode == "train" and args.samples_adaptively else None
            try:
                output = super()._generate_and_score_completions(inputs)
            finally:
                adaptive, self._adaptive_inputs, self._adaptive_batch = self._adaptive_batch, None, None
            result = self._weigh(self._take_gathered_rewards(), mode)
            batch_rows = slice(None)
        if adaptive is not None:  # Reinforce-Ada: the baseline is the whole pool's, not the n kept responses'
            weights = torch.where(result.keep, adaptive.advantages.to(result.weights.dtype), torch.zeros_like(result.weights))
            result = dataclasses.replace(result, weights=weights)
            for name, value in adaptive.rounds.metrics().items():
                self._metrics[mode][metric_key(name)].append(value)
        device = output["advantages"].device
        local_rows = output["completion_ids"].size(0)
        rank_rows = slice(self.accelerator.process_index * local_rows, (self.accelerator.process_index + 1) * local_rows)
        keep = result.keep[batch_rows][rank_rows].to(device)
        if self.uses_algorithm_weights:
            weights = result.weights[batch_rows][rank_rows]
            output["advantages"] = weights.to(device=device, dtype=output["advantages"].dtype)

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
        if lengths is None:
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
