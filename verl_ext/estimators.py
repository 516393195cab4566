"""minimal-rl's algorithms as verl advantage estimators (``algorithm.adv_estimator=<name>``).

Every estimator has the signature verl's ``compute_advantage`` (legacy ``ray_trainer`` and the v1
trainer, which delegates to it) uses for registered estimators::

    fn(token_level_rewards=(bs, T), response_mask=(bs, T), index=(bs,) uids, config=algorithm, **kw)
        -> (advantages (bs, T), returns (bs, T))

The score of a response is ``token_level_rewards.sum(-1)`` (verl puts the reward-function score on
the last valid token), exactly as verl's own ``grpo``. The per-sample weight A_i comes from
`minimal_rl.algorithms.compute_weights` (no algorithm math lives here) and is broadcast over the
response tokens: ``advantages[i, t] = A_i * response_mask[i, t]``. ``returns`` is the same tensor
(there is no critic).

Samples an algorithm rejects get weight 0 here in every filter mode. With the v1 trainer and the
replay-buffer sampler `verl_ext.sampler` (``filter_mode=drop``, the presets' default) they never reach
this function. Without the sampler (legacy trainer) that is "zero" mode, announced by one warning: they
still cost forward and backward passes, still count in the token-mean denominator (diluting every kept
token's gradient by the rejected fraction, which changes from step to step), and still receive the
KL-loss and entropy gradients when those terms are on. See docs/verl-filtering.md.

RAFT++ is not an estimator: it is ``raft`` weights with verl's own ``vanilla`` PPO-clip loss.
"""

from __future__ import annotations

from typing import Any

import torch
from verl.trainer.ppo.core_algos import register_adv_est

from minimal_rl.algorithms import ALGORITHMS, compute_weights

from .options import read_options

# Estimator names this package registers (lower case, as verl compares them): every algorithm of the
# core except RAFT++ (the `raft` estimator + verl's `vanilla` loss) and GRPO (verl's own `grpo`).
ESTIMATOR_NAMES: tuple[str, ...] = tuple(name for name in ALGORITHMS if name not in ("raft_pp", "grpo"))


def broadcast_weights(
    algorithm: str,
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    config: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``algorithm`` for a verl batch, broadcast to (bs, T) advantages and returns."""
    if index is None:
        raise ValueError(
            f"minimal-rl estimator {algorithm!r} needs the prompt id of every response "
            "(verl passes data.non_tensor_batch['uid'] as `index`; this batch has no 'uid')"
        )
    if token_level_rewards.shape != response_mask.shape:
        raise ValueError(
            f"token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must have the same (bs, T) shape"
        )
    options = read_options(config)
    # drop / refill happen in the v1 replay-buffer sampler; without it this warns once and means zero.
    # Either way rejected samples get weight 0 here (after a drop, none of them are left in the batch).
    from .sampler import filter_mode_in_effect  # lazy: imports verl's v1 replay buffer / TransferQueue

    filter_mode_in_effect(options.filter_mode)
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        result = compute_weights(
            scores,
            algorithm,
            group_ids=index,
            positive_threshold=options.positive_threshold,
            reward_mapping=options.reward_mapping,
            nan_policy=options.nan_policy,
        )
        advantages = result.weights.to(device=response_mask.device, dtype=token_level_rewards.dtype).unsqueeze(-1) * response_mask
    return advantages, advantages


@register_adv_est("raft")
def compute_raft_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """RAFT / RAFT++ (paper, Eq. 2): A_i = 1 for correct responses, 0 for wrong ones (dropped).

    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns (advantages, returns),
    both (bs, T) = A_i * response_mask. Use with ``policy_loss.loss_mode=raft`` (RAFT) or ``vanilla``
    (RAFT++).
    """
    return broadcast_weights("raft", token_level_rewards, response_mask, index, config)


@register_adv_est("reinforce")
def compute_reinforce_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Reinforce (paper, Eq. 5): A_i = r_i in {-1, +1}, nothing dropped.

    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns (advantages, returns),
    both (bs, T) = A_i * response_mask.
    """
    return broadcast_weights("reinforce", token_level_rewards, response_mask, index, config)


@register_adv_est("reinforce_rej")
def compute_reinforce_rej_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Reinforce-Rej (paper, Sec. 4): A_i = r_i in {-1, +1} in mixed groups; all-correct and all-wrong
    groups get 0 (filtered). No mean, no std.

    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns (advantages, returns),
    both (bs, T) = A_i * response_mask.
    """
    return broadcast_weights("reinforce_rej", token_level_rewards, response_mask, index, config)


@register_adv_est("reinforce_rej_std")
def compute_reinforce_rej_std_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Reinforce-Rej + std (paper, Sec. 4 ablation): A_i = r_i / std_group(r) (unbiased, no centring)
    in mixed groups; uniform groups get 0.

    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns (advantages, returns),
    both (bs, T) = A_i * response_mask.
    """
    return broadcast_weights("reinforce_rej_std", token_level_rewards, response_mask, index, config)


@register_adv_est("reinforce_remove_all_wrong")
def compute_reinforce_remove_all_wrong_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Reinforce + remove all wrong (paper, Sec. 4 ablation): A_i = r_i; all-wrong groups get 0.

    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns (advantages, returns),
    both (bs, T) = A_i * response_mask.
    """
    return broadcast_weights("reinforce_remove_all_wrong", token_level_rewards, response_mask, index, config)


@register_adv_est("reinforce_remove_all_correct")
def compute_reinforce_remove_all_correct_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Reinforce + remove all correct (paper, Sec. 4 ablation): A_i = r_i; all-correct groups get 0.

    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns (advantages, returns),
    both (bs, T) = A_i * response_mask.
    """
    return broadcast_weights("reinforce_remove_all_correct", token_level_rewards, response_mask, index, config)


@register_adv_est("reinforce_mean_zero")
def compute_reinforce_mean_zero_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Reinforce + mean zero (paper, Sec. 4 ablation): A_i = r_i - mean_group(r); nothing dropped
    (uniform groups come out as 0).

    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns (advantages, returns),
    both (bs, T) = A_i * response_mask.
    """
    return broadcast_weights("reinforce_mean_zero", token_level_rewards, response_mask, index, config)
