"""minimal-rl's weights as verl advantage estimators (``algorithm.adv_estimator=<name>``).

One estimator per estimator name of `minimal_rl.table` (``raft``, ``reinforce``, ``reinforce_rej``,
``reinforce_rej_std``, ``reinforce_remove_all_wrong``, ``reinforce_remove_all_correct``,
``reinforce_mean_zero``), registered with verl's ``register_adv_est``. Each has the signature verl's
``compute_advantage`` (legacy ``ray_trainer`` and the v1 trainer, which delegates to it) uses::

    fn(token_level_rewards=(bs, T), response_mask=(bs, T), index=(bs,) uids, config=algorithm, **kw)
        -> (advantages (bs, T), returns (bs, T))

The score of a response is ``token_level_rewards.sum(-1)`` (verl puts the reward-function score on the
last valid token), exactly as verl's own ``grpo``. The per-sample weight A_i comes from
`minimal_rl.algorithms.compute_weights` (no algorithm math lives here) and is broadcast over the response
tokens: ``advantages[i, t] = A_i * response_mask[i, t]``. ``returns`` is the same tensor (no critic).

Samples the sample filter rejects get weight 0 here in every filter mode. With the v1 trainer and the
replay-buffer sampler `verl_ext.sampler` (``filter_mode=drop``, the presets' default on verl >= 0.9) they never
reach this function. Without the sampler (verl < 0.9, the legacy trainer, or no preset) that is "zero" mode,
which the run announces once at config time (``hydra_plugins/minimal_rl_searchpath/filter_notice.py``).
RAFT++ is not an estimator of its own: it is ``raft`` weights with verl's ``vanilla`` PPO-clip loss.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from verl.trainer.ppo.core_algos import register_adv_est

from minimal_rl.algorithms import compute_weights
from minimal_rl.filtering import EmptySelectionWatch
from minimal_rl.table import ALGORITHMS, ESTIMATOR_NAMES, check_host_sampling

from .adaptive import with_pool_weights
from .options import read_options


def broadcast_weights(
    estimator: str,
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    config: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of ``estimator`` for a verl batch, broadcast to (bs, T) advantages and returns."""
    if index is None:
        raise ValueError(
            f"minimal-rl estimator {estimator!r} needs the prompt id of every response "
            "(verl passes data.non_tensor_batch['uid'] as `index`; this batch has no 'uid')"
        )
    if token_level_rewards.shape != response_mask.shape:
        raise ValueError(
            f"token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must have the same (bs, T) shape"
        )
    check_host_sampling(estimator, "verl_ext")
    options = read_options(config)
    # Rejected samples get weight 0 here in every filter mode (after a drop, none of them are left in the batch).
    with torch.no_grad():
        result = compute_weights(
            token_level_rewards.sum(dim=-1),
            estimator,
            group_ids=index,
            sample_filter=options.sample_filter,
            positive_threshold=options.positive_threshold,
            reward_mapping=options.reward_mapping,
            nan_policy=options.nan_policy,
        )
        # In zero mode the whole batch is here; after the sampler's drop every row left is kept, so this watch stays
        # quiet and the sampler's own watch (before the drop) speaks.
        chosen = options.sample_filter or ALGORITHMS[estimator].sample_filter
        _EMPTY_WATCH.observe(int(result.keep.sum()), result.scores, chosen, result.positive_threshold, "verl")
        result = with_pool_weights(result, index, options, estimator)  # Reinforce-Ada: the whole pool's baseline
        weights = result.weights.to(device=response_mask.device, dtype=token_level_rewards.dtype)
        advantages = weights.unsqueeze(-1) * response_mask
    return advantages, advantages


_EMPTY_WATCH = EmptySelectionWatch()


def _make_estimator(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    spec = ALGORITHMS[name]

    def estimator(token_level_rewards, response_mask, index=None, config=None, **kwargs):
        return broadcast_weights(name, token_level_rewards, response_mask, index, config)

    estimator.__name__ = estimator.__qualname__ = f"compute_{name}_advantage"
    estimator.__doc__ = (
        f"{spec.paper} (Xiong et al., arXiv 2504.11343): {spec.equation}, r_i in {{-1, +1}}; default sample "
        f"filter ``{spec.sample_filter}`` (``algorithm.minimal_rl.sample_filter`` replaces it), rejected samples "
        "get A_i = 0.\n\n    token_level_rewards, response_mask: (bs, T); index: (bs,) uids. Returns "
        "(advantages, returns), both (bs, T) = A_i * response_mask."
    )
    return estimator


ESTIMATORS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    name: register_adv_est(name)(_make_estimator(name)) for name in ESTIMATOR_NAMES
}
