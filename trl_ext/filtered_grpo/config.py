"""Configuration of FilteredGRPOTrainer (stock GRPO with one of the paper's sample filters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..selection import SampleSelectionConfig


@dataclass
class FilteredGRPOConfig(SampleSelectionConfig):
    r"""
    Configuration class for [`FilteredGRPOTrainer`]: GRPO with a sample filter of Xiong et al., "A Minimalist
    Approach to LLM Reasoning: from Rejection Sampling to Reinforce" (arXiv 2504.11343), Sec. 4 (most of GRPO's gain
    over Reinforce comes from removing all-wrong prompts).

    [`FilteredGRPOConfig`] inherits every parameter of [`~trl.GRPOConfig`] (advantages, `scale_rewards`, the loss)
    and of `SampleSelectionConfig` (`positive_threshold`, `reward_mapping` (unused: the advantages are GRPO's),
    `hard_drop`), and changes:

    Parameters:
        sample_filter (`str`, *optional*, defaults to `"drop_uniform"`):
            `"drop_uniform"`: drop the all-correct and all-wrong groups (GRPO's zero-variance groups, which carry
            zero advantage); `"drop_all_wrong"`, `"drop_all_correct"`, `"drop_wrong"` or `"none"` (stock GRPO).

    Any filter but `"none"` needs a `loss_type` under which a masked sample counts as dropped (`"dapo"`, `"cispo"`,
    `"vespo"`); the others are rejected with the reason. With `beta > 0` the dropped samples' KL term disappears too.
    """

    sample_filter: str | None = field(
        default="drop_uniform",
        metadata={
            "help": "Which samples leave the update: drop_uniform (zero-variance groups), drop_all_wrong, "
            "drop_all_correct, drop_wrong or none (stock GRPO)."
        },
    )
