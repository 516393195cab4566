"""ReinforceRejTrainer: Reinforce-Rej and the paper's Reinforce ablations as a GRPOTrainer subclass."""

from __future__ import annotations

from ..weighted import WeightedGRPOTrainer
from .config import ReinforceRejConfig


class ReinforceRejTrainer(WeightedGRPOTrainer):
    """
    Trainer for Reinforce-Rej (Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection Sampling to
    Reinforce", arXiv 2504.11343, Sec. 4) and the paper's Reinforce ablations (`ReinforceRejConfig.algorithm`).

    Differences from [`~trl.GRPOTrainer`]; everything else (generation with or without vLLM, reward functions,
    the PPO-clipped loss, accelerate / DeepSpeed / FSDP, KL, logging, checkpoints) is inherited unchanged:
      - advantages: r_i = +1 / -1 (correct iff reward > `positive_threshold`), with no mean and no std
        (Reinforce-Rej), from `minimal_rl.algorithms.compute_weights` on the rewards of all processes;
      - the prompts whose responses are all correct or all wrong are left out of the loss (masked, or removed
        with `hard_drop=True`), and the loss is the token mean over the kept tokens of the generation batch;
      - extra metrics: `filter/*` (group kinds, kept samples and tokens).

    Example:
    ```python
    from datasets import Dataset
    from trl_ext import ReinforceRejConfig, ReinforceRejTrainer
    from minimal_rl.reward import math_verify_reward

    dataset = Dataset.from_list([{"prompt": "What is 2+3? Put the answer in \\boxed{}.", "answer": "5"}] * 64)
    args = ReinforceRejConfig(output_dir="rrej-qwen", algorithm="reinforce_rej", per_device_train_batch_size=16)
    trainer = ReinforceRejTrainer(
        model="Qwen/Qwen2.5-Math-1.5B", reward_funcs=math_verify_reward, args=args, train_dataset=dataset
    )
    trainer.train()
    ```
    """

    config_class = ReinforceRejConfig
    _tag_names = ["trl", "minimal-rl", "reinforce-rej"]
    _name = "ReinforceRej"
