"""Configuration of RaftTrainer (RAFT and RAFT++)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..weighted import WeightedGRPOConfig


@dataclass
class RaftConfig(WeightedGRPOConfig):
    r"""
    Configuration class for [`RaftTrainer`]: RAFT and RAFT++ of Xiong et al., "A Minimalist Approach to LLM
    Reasoning: from Rejection Sampling to Reinforce" (arXiv 2504.11343), Sec. 3.1.

    [`RaftConfig`] inherits every parameter of [`~trl.GRPOConfig`] and adds the fields of `WeightedGRPOConfig`
    (`positive_threshold`, `reward_mapping`, `hard_drop`; see there) and:

    Parameters:
        importance_sampling (`bool`, *optional*, defaults to `False`):
            `False`: RAFT, the loss -log pi on the kept (correct) responses, no importance ratio, no clipping.
            `True`: RAFT++, GRPO's PPO-clipped surrogate with weight 1 on the kept responses; `epsilon` and
            `epsilon_high` are its clip range (the paper's clip-higher variant: `epsilon_high=0.28`).

    Defaults that differ from [`~trl.GRPOConfig`]: `num_generations=4`, `scale_rewards="none"`. The paper's
    other settings are TRL's defaults already (`learning_rate=1e-6`, `temperature=1.0`, `epsilon=0.2`,
    `beta=0.0`: the paper's runs add a KL term of 0.001, set `beta=0.001` for it). The released code's
    dual clipping (c = 3) is TRL's `delta=3.0`. The paper's "RAFT++ without clipping" ablation is
    `importance_sampling=True, epsilon_high=1e9` (never clipped: with weights ≥ 0 only the upper clip binds).
    """

    importance_sampling: bool = field(
        default=False,
        metadata={
            "help": "False: RAFT (-log pi on kept responses, no ratio, no clipping). True: RAFT++ (GRPO's clipped "
            "surrogate with weight 1, clip range epsilon / epsilon_high; clip-higher: epsilon_high=0.28)."
        },
    )

    @property
    def minimal_rl_algorithm(self) -> str:
        return "raft_pp" if self.importance_sampling else "raft"
