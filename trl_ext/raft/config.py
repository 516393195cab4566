"""Configuration of RaftTrainer (RAFT, RAFT++ and its clip variants)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from minimal_rl.table import algorithms_of, get_algorithm

from ..selection import WeightedGRPOConfig


@dataclass
class RaftConfig(WeightedGRPOConfig):
    r"""
    Configuration class for [`RaftTrainer`]: RAFT and RAFT++ of Xiong et al., "A Minimalist Approach to LLM
    Reasoning: from Rejection Sampling to Reinforce" (arXiv 2504.11343), Sec. 3.1.

    [`RaftConfig`] inherits every parameter of [`~trl.GRPOConfig`] and of `SampleSelectionConfig`
    (`sample_filter`, `positive_threshold`, `reward_mapping`, `hard_drop`), and adds:

    Parameters:
        algorithm (`str`, *optional*, defaults to `"raft"`):
            `"raft"`: the loss -log pi on the kept (correct) responses, no importance ratio, no clipping.
            `"raft_pp"`: RAFT++, GRPO's PPO-clipped surrogate with weight 1 on the kept responses (`epsilon`,
            `epsilon_high` are its clip range). `"raft_pp_clip_higher"`: RAFT++ with `epsilon_high=0.28`.
            `"raft_pp_no_clip"`: RAFT++ with `epsilon_high=1e9`, the paper's "without clipping" ablation (the
            weights are >= 0, so only the upper clip can bind). An explicit `epsilon_high` wins.

    Defaults that differ from [`~trl.GRPOConfig`]: `num_generations=4`, `scale_rewards="none"`. The paper's other
    settings are TRL's defaults already (`learning_rate=1e-6`, `temperature=1.0`, `epsilon=0.2`, `beta=0.0`: the
    paper's runs add a KL term of 0.001, set `beta=0.001` for it). The released code's dual clipping (c = 3) is
    TRL's `delta=3.0`.
    """

    algorithm: str = field(
        default="raft",
        metadata={
            "help": "raft (-log pi on kept responses, no ratio, no clip), raft_pp (GRPO's clipped surrogate with "
            "weight 1), raft_pp_clip_higher (epsilon_high=0.28) or raft_pp_no_clip (epsilon_high=1e9).",
            "choices": list(algorithms_of("raft")),
        },
    )
    families: ClassVar[tuple[str, ...]] = ("raft",)

    def __post_init__(self):
        clip_ratio_high = get_algorithm(self.algorithm).clip_ratio_high
        if clip_ratio_high is not None and self.epsilon_high is None:
            self.epsilon_high = clip_ratio_high
        super().__post_init__()
