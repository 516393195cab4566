"""RaftTrainer: RAFT and RAFT++ as a GRPOTrainer subclass."""

from __future__ import annotations

from minimal_rl.table import get_algorithm

from ..selection import WeightedGRPOTrainer
from .config import RaftConfig


class RaftTrainer(WeightedGRPOTrainer):
    """
    Trainer for RAFT and RAFT++ (Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection Sampling to
    Reinforce", arXiv 2504.11343, Sec. 3.1): rejection-sampling fine-tuning on the correct responses only.

    Hooks overridden w.r.t. [`~trl.GRPOTrainer`] (generation with or without vLLM, reward functions, accelerate /
    DeepSpeed / FSDP, KL, logging and checkpoints are inherited unchanged):
      - `_calculate_rewards`, `_generate_and_score_completions` (from `SampleSelectionTrainer`): the advantages become
        weight 1 on correct responses (reward > `positive_threshold`); wrong responses are left out of the loss
        (masked, or removed with `hard_drop=True`);
      - `_compute_loss`, for `algorithm="raft"` only: the old log-probs are withheld, so GRPOTrainer's ratio is
        pi / stop_grad(pi) = 1 in value and its gradient is exactly that of the RAFT loss -A log pi
        (`minimal_rl.algorithms.raft_loss`, paper Eq. 2), never clipped. The logged `loss` is then the surrogate
        (-mean weight). RAFT++ (`raft_pp*`) uses GRPO's clipped loss unchanged.

    Example (RAFT++ on a chat dataset, generation with vLLM):
    ```python
    from datasets import load_dataset
    from minimal_rl.prompts import build_messages
    from minimal_rl.reward import math_verify_reward
    from trl_ext import RaftConfig, RaftTrainer

    rows = load_dataset("json", data_files="train.jsonl", split="train")  # `problem`, `answer`
    rows = rows.map(lambda r: {"prompt": build_messages(r["problem"]), "answer": r["answer"]})
    args = RaftConfig(output_dir="raft-pp", algorithm="raft_pp", use_vllm=True, beta=0.001)
    RaftTrainer(model="Qwen/Qwen2.5-Math-7B", reward_funcs=math_verify_reward, args=args, train_dataset=rows).train()
    ```
    """

    config_class = RaftConfig
    _tag_names = ["trl", "minimal-rl", "raft"]
    _name = "RAFT"

    def _compute_loss(self, model, inputs):
        if get_algorithm(self.args.algorithm).loss == "nll":
            # Without old log-probs GRPOTrainer uses ratio = exp(logp - logp.detach()) = 1, whose gradient is
            # grad log pi: the RAFT loss -A log pi, with nothing to clip.
            inputs = {key: value for key, value in inputs.items() if key != "old_per_token_logps"}
        return super()._compute_loss(model, inputs)
