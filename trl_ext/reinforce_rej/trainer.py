"""ReinforceRejTrainer: Reinforce-Rej and the paper's Reinforce ablations as a GRPOTrainer subclass."""

from __future__ import annotations

from ..selection import WeightedGRPOTrainer
from .config import ReinforceRejConfig


class ReinforceRejTrainer(WeightedGRPOTrainer):
    """
    Trainer for Reinforce-Rej (Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection Sampling to
    Reinforce", arXiv 2504.11343, Sec. 4) and the paper's Reinforce ablations (`ReinforceRejConfig.algorithm`).

    Hooks overridden w.r.t. [`~trl.GRPOTrainer`] (generation with or without vLLM, reward functions, the PPO-clipped
    loss, accelerate / DeepSpeed / FSDP, KL, logging and checkpoints are inherited unchanged): only
    `_calculate_rewards` and `_generate_and_score_completions` (from `SampleSelectionTrainer`): the advantages
    become r_i = +1 / -1 (correct iff reward > `positive_threshold`), with no mean and no std, and the prompts whose
    responses are all correct or all wrong are left out of the loss (masked, or removed with `hard_drop=True`).

    Example (Reinforce-Rej, then the paper's "remove all wrong" ablation, by name):
    ```python
    from datasets import Dataset
    from minimal_rl.reward import math_verify_reward
    from trl_ext import ReinforceRejConfig, ReinforceRejTrainer, build_trainer

    data = Dataset.from_list([{"prompt": "What is 2+3? Put the answer in \\boxed{}.", "answer": "5"}] * 64)
    args = ReinforceRejConfig(output_dir="rrej", per_device_train_batch_size=16, hard_drop=True)
    ReinforceRejTrainer("Qwen/Qwen2.5-Math-1.5B", math_verify_reward, args=args, train_dataset=data).train()
    ablation = build_trainer("reinforce_remove_all_wrong", "Qwen/Qwen2.5-Math-1.5B", math_verify_reward,
                             config={"output_dir": "rrej-ablation"}, train_dataset=data)
    ```
    """

    config_class = ReinforceRejConfig
    _tag_names = ["trl", "minimal-rl", "reinforce-rej"]
    _name = "ReinforceRej"
