"""FilteredGRPOTrainer: stock GRPO with one of the paper's sample filters applied as a drop."""

from __future__ import annotations

from ..selection import SampleSelectionTrainer
from .config import FilteredGRPOConfig


class FilteredGRPOTrainer(SampleSelectionTrainer):
    """
    Trainer for GRPO with a sample filter (Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection
    Sampling to Reinforce", arXiv 2504.11343, Sec. 4): GRPO's own advantages, with the samples the filter rejects
    really left out of the update (zero loss mask, or removed with `hard_drop=True`, rank-safe), not kept with zero
    advantage.

    Hooks overridden w.r.t. [`~trl.GRPOTrainer`]: only `_calculate_rewards` and `_generate_and_score_completions`
    (from `SampleSelectionTrainer`): the advantages stay GRPO's; the keep mask of `sample_filter` zeroes the loss
    mask of rejected samples, `num_items_in_batch` counts the kept tokens, and `sample_filter/*` metrics are logged.
    For GRPO with `beta=0` the dropped zero-variance groups carry zero advantage, so under `loss_type="dapo"` the
    drop changes only the denominator (the kept tokens instead of all tokens: no dilution).

    Example (an existing GRPO script: swap the two classes, keep everything else):
    ```python
    from trl_ext import FilteredGRPOConfig, FilteredGRPOTrainer

    # was: args = GRPOConfig(output_dir="grpo", loss_type="dapo", num_generations=8, beta=0.0)
    args = FilteredGRPOConfig(output_dir="grpo", loss_type="dapo", num_generations=8, beta=0.0,
                              sample_filter="drop_uniform")  # zero-variance groups leave the update
    # was: trainer = GRPOTrainer(model, reward_funcs=my_reward, args=args, train_dataset=my_dataset)
    trainer = FilteredGRPOTrainer(model, reward_funcs=my_reward, args=args, train_dataset=my_dataset)
    trainer.train()  # logs sample_filter/groups_*, sample_filter/samples_kept_frac, ... every step
    ```
    """

    config_class = FilteredGRPOConfig
    _tag_names = ["trl", "minimal-rl", "filtered-grpo"]
    _name = "FilteredGRPO"
