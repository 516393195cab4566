"""RaftTrainer: RAFT and RAFT++ as a GRPOTrainer subclass."""

from __future__ import annotations

import torch

from ..weighted import LOSS_MASK_KEY, WeightedGRPOTrainer
from .config import RaftConfig


class RaftTrainer(WeightedGRPOTrainer):
    """
    Trainer for RAFT and RAFT++ (Xiong et al., "A Minimalist Approach to LLM Reasoning: from Rejection Sampling
    to Reinforce", arXiv 2504.11343, Sec. 3.1): rejection sampling fine-tuning on the correct responses only.

    Differences from [`~trl.GRPOTrainer`]; everything else (generation with or without vLLM, reward functions,
    accelerate / DeepSpeed / FSDP, KL, logging, checkpoints) is inherited unchanged:
      - advantages: weight 1 on correct responses (reward > `positive_threshold`), from
        `minimal_rl.algorithms.compute_weights`; wrong responses are left out of the loss (masked, or removed
        with `hard_drop=True`) and the loss is the token mean over the kept tokens of the generation batch;
      - RAFT (`importance_sampling=False`): the importance ratio is held at 1 in value (pi / stop_grad(pi)),
        so the gradient is exactly that of -log pi, without clipping, at every iteration; RAFT++
        (`importance_sampling=True`) uses GRPO's clipped loss unchanged;
      - extra metrics: `filter/*` (group kinds, kept samples and tokens) and `raft/nll`.

    The logged `loss` is the surrogate (-1 per kept token for RAFT); `raft/nll` is the mean -log pi of the kept
    tokens. TRL's vLLM sampler correction (`vllm_importance_sampling_correction`) is independent of the
    algorithm and stays as configured.

    Example:
    ```python
    from datasets import Dataset
    from trl_ext import RaftConfig, RaftTrainer
    from minimal_rl.reward import math_verify_reward

    dataset = Dataset.from_list([{"prompt": "What is 2+3? Put the answer in \\boxed{}.", "answer": "5"}] * 64)
    args = RaftConfig(output_dir="raft-qwen", importance_sampling=True, per_device_train_batch_size=16)
    trainer = RaftTrainer(
        model="Qwen/Qwen2.5-Math-1.5B", reward_funcs=math_verify_reward, args=args, train_dataset=dataset
    )
    trainer.train()
    ```
    """

    config_class = RaftConfig
    _tag_names = ["trl", "minimal-rl", "raft"]
    _name = "RAFT"

    def __init__(self, model, reward_funcs=None, args: RaftConfig | None = None, **kwargs):
        self._captured_logps: torch.Tensor | None = None
        self._capture_logps = False
        super().__init__(model, reward_funcs, args=args, **kwargs)

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._capture_logps:
            self._captured_logps = result[0].detach()
        return result

    def _compute_loss(self, model, inputs):
        if not self.args.importance_sampling:
            # Without old log-probs GRPOTrainer uses ratio = exp(logp - logp.detach()) = 1, whose gradient is
            # grad log pi: the RAFT loss -A log pi, with nothing to clip.
            inputs = {key: value for key, value in inputs.items() if key != "old_per_token_logps"}
        self._capture_logps = True
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self._capture_logps = False
        logps, self._captured_logps = self._captured_logps, None
        if logps is not None:
            mask = inputs["completion_mask"]
            if LOSS_MASK_KEY in inputs:
                mask = mask * inputs[LOSS_MASK_KEY]
            mask = mask.to(logps.dtype)
            totals = torch.stack([(-logps * mask).sum(), mask.sum()])
            totals = self.accelerator.reduce(totals, reduction="sum")
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["raft/nll"].append((totals[0] / totals[1].clamp(min=1.0)).item())
        return loss
