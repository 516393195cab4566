"""The RAFT policy loss for verl (``actor_rollout_ref.actor.policy_loss.loss_mode=raft``).

RAFT++ and the Reinforce family use verl's own ``vanilla`` PPO-clip loss; nothing is re-implemented.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss
from verl.utils.torch_functional import masked_mean

from minimal_rl.algorithms import raft_loss


@register_policy_loss("raft")  # type: ignore[arg-type]
def compute_policy_loss_raft(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Optional[Any] = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """RAFT loss L = agg(-A * log pi_theta) (`minimal_rl.algorithms.raft_loss`, paper Eq. 2) with verl's
    ``agg_loss`` and global batch info.

    All tensors (bs, T). Same call signature and metric keys as verl's ``vanilla`` loss, so verl's metric
    aggregation sees the same keys every step: ``actor/pg_clipfrac`` and ``actor/pg_clipfrac_lower`` are always
    0 (nothing is clipped) and ``actor/ppo_kl`` is the usual mean of log pi_old - log pi_theta. With one gradient
    step per batch (pi_theta = pi_old) the gradient equals RAFT++'s (``vanilla`` with the ``raft`` estimator).
    """
    if config is None:
        raise ValueError("the raft policy loss needs the actor config (for global_batch_info)")
    pg_losses = raft_loss(log_prob, advantages)
    if rollout_is_weights is not None:
        pg_losses = pg_losses * rollout_is_weights
    pg_loss = agg_loss(
        loss_mat=pg_losses, loss_mask=response_mask, loss_agg_mode=loss_agg_mode, **config.global_batch_info
    )
    with torch.no_grad():
        # clamped like verl's vanilla so the metric reads the same for both losses
        ppo_kl = masked_mean(torch.clamp(old_log_prob - log_prob, min=-20.0, max=20.0), response_mask)
    metrics = {
        "actor/pg_clipfrac": 0.0,
        "actor/ppo_kl": ppo_kl.item(),
        "actor/pg_clipfrac_lower": 0.0,
    }
    return pg_loss, metrics
