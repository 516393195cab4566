"""What RaftTrainer and ReinforceRejTrainer share: GRPOTrainer with minimal_rl's weights and keep mask.

Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection Sampling to Reinforce"
(arXiv 2504.11343). GRPOTrainer normalises rewards per group into advantages; these trainers replace
that single step: the advantages become the per-sample weights of `minimal_rl.algorithms.compute_weights`
(computed on the rewards gathered from every process, so a group split across ranks is judged whole),
and the samples the algorithm rejects are left out of the loss. Generation (vLLM or transformers),
reward functions, the PPO-clipped loss, KL, logging and checkpoints are GRPOTrainer's own.

No group statistic is computed here: the weights, keep masks and metrics come from `minimal_rl`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import get_config_model_id

from minimal_rl.algorithms import REWARD_MAPPINGS, Algorithm, compute_weights, get_algorithm, keep_everything

from .hard_drop import LOSS_MASK_KEY, drop_rejected_rows

logger = logging.getLogger(__name__)

# TRL loss types that are the PPO clipped surrogate of the paper (they differ only in aggregation).
PPO_CLIP_LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")
# The aggregation under which a masked row contributes exactly nothing, as if it had been dropped:
# TRL's "dapo" divides the summed token losses by the kept-token count of the whole generation batch
# (over all ranks), so neither the denominator nor any other row's share depends on masked rows. "grpo"
# and "dr_grpo" divide by the row count and "bnpo" by each micro-batch's token count, so masked rows
# would dilute the gradient by a fraction that changes every step.
DROP_EXACT_LOSS_TYPE = "dapo"


@dataclass
class WeightedGRPOConfig(GRPOConfig):
    r"""
    Fields shared by [`RaftConfig`] and [`ReinforceRejConfig`]; every [`~trl.GRPOConfig`] field keeps its meaning.

    Parameters:
        positive_threshold (`float`, *optional*, defaults to `0.0`):
            A response is correct iff its reward (the weighted sum over `reward_funcs`) is strictly above this
            value, so {0, 1} and {-1, +1} verifiers both work.
        reward_mapping (`str`, *optional*, defaults to `"signed"`):
            The reward r the Reinforce weights use: `"signed"` (+1 correct / -1 wrong, the paper) or `"raw"`
            (the reward as returned, the released code's behaviour, which turns Reinforce-Rej into
            positives-only training with a {0, 1} verifier). RAFT's weights are 1 either way.
        hard_drop (`bool`, *optional*, defaults to `False`):
            `False`: rejected samples stay in the batch with a zero loss mask (every rank keeps its shape).
            `True`: they are removed and the kept samples are re-split evenly over the ranks (padded with
            masked filler rows), saving their forward and backward passes. Both give the same gradient.

    Defaults that differ from [`~trl.GRPOConfig`]: `num_generations=4` (the paper's n),
    `scale_rewards="none"` (the weights come from the algorithm; any other value is rejected) and
    `use_bias_correction_kl=False` (the paper's plain k3 KL, verl's `low_var_kl`).
    `loss_type` must stay `"dapo"` (token mean over the whole generation batch) whenever the algorithm
    leaves samples out, because it is the aggregation under which a masked sample counts as dropped.
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
    positive_threshold: float = field(
        default=0.0,
        metadata={
            "help": "A response is correct iff its reward (weighted sum over reward_funcs) is strictly above this "
            "value, so {0,1} and {-1,+1} verifiers both work."
        },
    )
    reward_mapping: str = field(
        default="signed",
        metadata={
            "help": "Reward used by the Reinforce weights: 'signed' (+1/-1 from correctness, the paper) or 'raw' "
            "(the reward as returned, the released code's pass-through). RAFT's weights are 1 either way."
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

    @property
    def minimal_rl_algorithm(self) -> str:
        """Name of the `minimal_rl.algorithms.ALGORITHMS` entry this config trains with."""
        raise NotImplementedError

    def __post_init__(self):
        super().__post_init__()
        algorithm = get_algorithm(self.minimal_rl_algorithm)  # also validates the name
        if self.reward_mapping not in REWARD_MAPPINGS:
            raise ValueError(f"reward_mapping must be one of {REWARD_MAPPINGS}, got {self.reward_mapping!r}")
        if self.scale_rewards != "none":
            raise ValueError(
                f"scale_rewards={self.scale_rewards!r} is not supported by {type(self).__name__}: the weights come "
                "from the algorithm, so TRL's reward scaling would be silently ignored. Leave scale_rewards='none' "
                "(for the std-normalised ablation use ReinforceRejConfig(algorithm='reinforce_rej_std'))."
            )
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                f"multi_objective_aggregation={self.multi_objective_aggregation!r} is not supported: correctness is "
                "judged on the weighted sum of the reward functions (the 'sum_then_normalize' sum, without TRL's "
                "normalisation)."
            )
        can_leave_out = algorithm.keep is not keep_everything
        if self.loss_type not in PPO_CLIP_LOSS_TYPES:
            raise ValueError(
                f"loss_type={self.loss_type!r} is not the paper's objective; use 'dapo' (token mean over the whole "
                f"generation batch; also accepted for algorithms that keep every sample: {PPO_CLIP_LOSS_TYPES})."
            )
        if can_leave_out and self.loss_type != DROP_EXACT_LOSS_TYPE:
            raise ValueError(
                f"loss_type={self.loss_type!r} cannot be used with {self.minimal_rl_algorithm!r}, which leaves samples "
                "out of the update: under that aggregation the masked samples still count in the denominator and "
                "dilute the gradient by a fraction that changes every step. Use loss_type='dapo' (token mean over "
                "the kept tokens of the whole generation batch, exactly as if the samples had been dropped)."
            )
        if self.hard_drop and not can_leave_out:
            logger.warning("hard_drop=True has no effect: %s keeps every sample", self.minimal_rl_algorithm)


class WeightedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages are `minimal_rl` weights and whose rejected samples are left out.

    The only changes w.r.t. [`~trl.GRPOTrainer`]:
      - `_generate_and_score_completions`: the advantages are replaced by the algorithm's per-sample weights,
        computed on the rewards of every process; rejected samples get a zero loss mask (or are removed with
        `hard_drop=True`); `num_items_in_batch` counts kept tokens only; selection metrics are logged.
    Subclasses may change the loss (`RaftTrainer`).
    """

    config_class: type[WeightedGRPOConfig] = WeightedGRPOConfig
    _tag_names = ["trl", "minimal-rl"]
    _name = "Weighted"

    def __init__(self, model: Any, reward_funcs: Any = None, args: WeightedGRPOConfig | None = None, **kwargs: Any):
        if args is None:
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = self.config_class(f"{model_name.split('/')[-1]}-{self._name}")
        if not isinstance(args, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__} (a GRPOConfig subclass with the "
                f"algorithm's fields), got {type(args).__name__}"
            )
        super().__init__(model, reward_funcs, args=args, **kwargs)
        self.algorithm: Algorithm = get_algorithm(args.minimal_rl_algorithm)
        if len(self.reward_funcs) > 1:
            logger.warning(
                "%s: %d reward functions; a response is correct iff the weighted sum of their rewards "
                "(reward_weights) is > positive_threshold=%s",
                type(self).__name__,
                len(self.reward_funcs),
                args.positive_threshold,
            )
        self._gathered_rewards_per_func: torch.Tensor | None = None

    # ------------------------------------------------------------------ rewards -> weights

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # GRPOTrainer gathers the rewards of all processes here (a prompt's group can straddle ranks).
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
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        rewards_per_func, self._gathered_rewards_per_func = self._gathered_rewards_per_func, None
        if rewards_per_func is None:
            raise RuntimeError("GRPOTrainer did not compute rewards through _calculate_rewards (TRL changed?)")

        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        result = compute_weights(
            self._scores_from_rewards(rewards_per_func).float().cpu(),
            self.algorithm.name,
            group_size=group_size,
            positive_threshold=self.args.positive_threshold,
            reward_mapping=self.args.reward_mapping,
        )
        device = output["advantages"].device
        local_rows = output["completion_ids"].size(0)
        process_slice = slice(self.accelerator.process_index * local_rows, (self.accelerator.process_index + 1) * local_rows)
        keep = result.keep[process_slice].to(device)
        output["advantages"] = result.weights[process_slice].to(device=device, dtype=output["advantages"].dtype)

        # Leave rejected rows out of the loss through the per-token loss mask GRPOTrainer multiplies into
        # completion_mask (its `tool_mask`), so their attention and every other row stay untouched.
        completion_mask = output["completion_mask"]
        loss_mask = output.get(LOSS_MASK_KEY)
        if loss_mask is None:
            loss_mask = torch.ones_like(completion_mask)
        response_tokens = (completion_mask * loss_mask).sum(dim=1)
        output[LOSS_MASK_KEY] = loss_mask * keep.unsqueeze(1).to(loss_mask.dtype)
        # "dapo" divides by this: the kept tokens of the whole generation batch, over all ranks.
        output["num_items_in_batch"] = self.accelerator.gather((completion_mask * output[LOSS_MASK_KEY]).sum()).sum()

        lengths = self.accelerator.gather(response_tokens).cpu()
        for name, value in result.metrics(lengths).items():
            self._metrics[mode][f"filter/{name}"].append(value)
        self._log_selection(result)

        if self.args.hard_drop and mode == "train" and self.algorithm.keep is not keep_everything:
            output, plan = drop_rejected_rows(
                output,
                keep,
                self.accelerator,
                rows_multiple=self.args.steps_per_generation,
                pad_token_id=self._tokenizer.pad_token_id,
                trim=self.pad_to_multiple_of is None,  # trimming would break a padded width multiple
            )
            self._metrics[mode]["filter/rows_per_rank"].append(float(plan.rows_per_rank))
            self._metrics[mode]["filter/filler_rows"].append(float(plan.num_filler_total))
        return output

    def _log_selection(self, result) -> None:
        """Completions table: the weights replace GRPO's advantages, and a `kept` column is added."""
        weights = result.weights.tolist()
        advantages = self._logs["advantages"]
        for _ in range(min(len(weights), len(advantages))):
            advantages.pop()
        advantages.extend(weights)
        self._logs["extra"]["kept"].extend(result.keep.tolist())
