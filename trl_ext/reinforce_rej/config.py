"""Configuration of ReinforceRejTrainer (Reinforce-Rej and the paper's Reinforce ablations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from minimal_rl.table import algorithms_of

from ..selection import WeightedGRPOConfig


@dataclass
class ReinforceRejConfig(WeightedGRPOConfig):
    r"""
    Configuration class for [`ReinforceRejTrainer`]: Reinforce-Rej and the Reinforce ablations of Xiong et al.,
    "A Minimalist Approach to LLM Reasoning: from Rejection Sampling to Reinforce" (arXiv 2504.11343), Sec. 4.

    [`ReinforceRejConfig`] inherits every parameter of [`~trl.GRPOConfig`] and of `SampleSelectionConfig`
    (`sample_filter`, `positive_threshold`, `reward_mapping`, `hard_drop`), and adds:

    Parameters:
        algorithm (`str`, *optional*, defaults to `"reinforce_rej"`):
            Per-sample weight A_i and what is left out (r_i = +1 correct / -1 wrong):
            `"reinforce_rej"`: A = r, drop all-correct and all-wrong groups (the paper's method);
            `"reinforce"`: A = r, keep everything; `"reinforce_rej_std"`: A = r / std_group(r), drop uniform
            groups; `"reinforce_remove_all_wrong"` / `"reinforce_remove_all_correct"`: A = r, drop only those
            groups; `"reinforce_mean_zero"`: A = r - mean_group(r), keep everything. `sample_filter` replaces the
            filter (e.g. `algorithm="reinforce", sample_filter="drop_all_wrong"` is the second ablation).

    Defaults that differ from [`~trl.GRPOConfig`]: `num_generations=4`, `scale_rewards="none"` (any other value is
    rejected: the std ablation is `algorithm="reinforce_rej_std"`). The paper's other settings are TRL's defaults
    already (`learning_rate=1e-6`, `temperature=1.0`, `epsilon=0.2`, `loss_type="dapo"`, `beta=0.0`: the paper's
    runs add a KL term of 0.001, set `beta=0.001` for it). The released code's dual clipping (c = 3) is `delta=3.0`.
    """

    algorithm: str = field(
        default="reinforce_rej",
        metadata={
            "help": "Which Reinforce variant of the paper: reinforce_rej (A=r, drop all-correct and all-wrong "
            "groups), reinforce (keep all), reinforce_rej_std (A=r/std), reinforce_remove_all_wrong, "
            "reinforce_remove_all_correct, reinforce_mean_zero (A=r-mean).",
            "choices": list(algorithms_of("reinforce")),
        },
    )
    families: ClassVar[tuple[str, ...]] = ("reinforce",)
