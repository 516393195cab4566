"""Replay-buffer samplers for verl's v1 trainers that DROP rejected samples instead of zero-weighting them.

The paper filters rejected prompts out of the update (Xiong et al., arXiv 2504.11343, Sec. 3-4); stock verl
and the paper's fork keep them with weight 0, so they still cost old-log-prob, reference and forward/backward
compute, sit in the token-mean denominator and receive KL / entropy gradients. These samplers take the batch
verl's own replay buffer selects (its public ``sample()``) and remove the rejected rows from it, before verl
balances the batch, using the keep mask of `minimal_rl.algorithms.compute_weights` (the estimators' own).

Select it with (both trainer modes; the class picks the sync or async variant itself)::

    trainer.v1.sampler.custom_sampler.path=pkg://verl_ext.sampler
    trainer.v1.sampler.custom_sampler.name=MinimalRLSampler

verl hands a custom sampler only ``trainer.v1.sampler.sampler_kwargs``, so the presets interpolate there::

    trainer.v1.sampler.sampler_kwargs:
      algorithm: ${algorithm.adv_estimator}       # required: whose weights / default filter
      minimal_rl: ${algorithm.minimal_rl}          # the options block, read like the estimators read it
      ppo_mini_batch_size: ${actor_rollout_ref.actor.ppo_mini_batch_size}  # verl's row multiple, to pad cheaply
      rollout_n: ${actor_rollout_ref.rollout.n}
      nnodes: ${trainer.nnodes}                     # with n_gpus_per_node: the world size (a multiple of dp)
      n_gpus_per_node: ${trainer.n_gpus_per_node}
      (refill settings: see `verl_ext.refill`)

Filter modes (``algorithm.minimal_rl.filter_mode``):
    drop    the rejected responses (``drop_wrong``) or groups (the group filters) leave the batch and the
            transfer queue. The batch shrinks and is padded to verl's required multiple here, with 2-token rows
            whose loss mask is 0 (verl's own padding rows are 128 tokens each, which would cost more compute than
            the dropped rows saved on short responses).
    zero    nothing is dropped (the paper's fork); the estimator gives rejected samples weight 0.
    refill  `verl_ext.refill` (experimental): rejected groups are replaced by fresh prompts.

Every training step logs ``sample_filter/*`` metrics (`BatchSelection.apply`; names: `minimal_rl.metrics`).
"""

from __future__ import annotations

import logging
from typing import Any

import transfer_queue as tq
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

from minimal_rl.metrics import metric_key
from minimal_rl.table import is_adaptive

from .adaptive import MANAGER_CLASS, POOL_FIELD, POOLS
from .selection import METRIC_PREFIX, PADDING_ROW_TOKENS, BatchSelection, SamplerSettings, padding_row_template, uid_of

logger = logging.getLogger(__name__)

__all__ = [
    "METRIC_PREFIX", "PADDING_ROW_TOKENS", "MinimalRLReplayBuffer", "MinimalRLReplayBufferAsync", "MinimalRLSampler",
    "padding_row_template",
]

# --------------------------------------------------------------------------------------------
# The samplers: verl's buffers with the filter after their public sample()
# --------------------------------------------------------------------------------------------


class _DropMixin:
    """Mixed in before verl's `ReplayBuffer` / `ReplayBufferAsync`: only ``sample()`` changes."""

    def __init__(self, *, sampler_kwargs: Any, settings: SamplerSettings | None = None, **verl_kwargs: Any):
        self.settings = settings or SamplerSettings.parse(sampler_kwargs)
        self.selection = BatchSelection(self.settings)
        super().__init__(sampler_kwargs=sampler_kwargs, **verl_kwargs)
        logger.info(
            "minimal-rl sampler: estimator=%s sample_filter=%s filter_mode=%s",
            self.settings.estimator, self.settings.sample_filter, self.settings.options.filter_mode,
        )

    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[KVBatchMeta, dict]:
        batch, metrics = super().sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        if partition_id == "val":
            return batch, metrics
        if is_adaptive(self.settings.estimator) and len(batch):  # before the filter: uniform pools count too
            metrics.update(read_adaptive_pools(batch))
        batch, selection_metrics = self.selection.apply(batch)
        metrics.update(selection_metrics)
        return batch, metrics


def read_adaptive_pools(batch: KVBatchMeta) -> dict[str, float]:
    """Reinforce-Ada: record the pools the rollout worker wrote with the kept rows (`verl_ext.adaptive.POOLS`, read
    by the estimator of this step) and return the rounds metrics."""
    try:
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=[POOL_FIELD])
        records = list(data[POOL_FIELD])  # tensordict's LinkedList of str
    except Exception as error:  # TransferQueue names the missing field in its own words
        raise RuntimeError(
            f"the sampled rows carry no Reinforce-Ada pool ({POOL_FIELD}): the reinforce_ada_* estimators need "
            f"actor_rollout_ref.rollout.agent.agent_loop_manager_class={MANAGER_CLASS}, which the "
            f"+minimal_rl=reinforce_ada_* presets set ({type(error).__name__}: {error})"
        ) from error
    metrics = POOLS.read_batch([uid_of(key) for key in batch.keys], records)
    return {metric_key(name): value for name, value in metrics.items()}


class MinimalRLReplayBuffer(_DropMixin, ReplayBuffer):
    """verl's sync `ReplayBuffer` that drops rejected samples (see the module docstring)."""


class MinimalRLReplayBufferAsync(_DropMixin, ReplayBufferAsync):
    """verl's `ReplayBufferAsync` (colocate_async / separate_async trainers) that drops rejected samples."""


def _needs_refill_module(settings: SamplerSettings) -> bool:
    raw = settings.raw
    dapo = bool((raw.get("filter_groups") or {}).get("enable", False))
    return settings.options.filter_mode == "refill" or dapo or bool(raw.get("sync_refill_failed_groups"))


class MinimalRLSampler:
    """The class to name in ``trainer.v1.sampler.custom_sampler.name``: builds the sync or async variant for
    ``trainer_mode`` (verl instantiates one class for every trainer mode); refill mode, verl's DAPO group
    filtering (``algorithm.filter_groups``) and failed-group refill go to the experimental `verl_ext.refill`."""

    def __new__(cls, *, trainer_mode: str, sampler_kwargs: Any, **kwargs: Any):
        settings = SamplerSettings.parse(sampler_kwargs)
        if _needs_refill_module(settings):
            from .refill import build_refill_sampler

            return build_refill_sampler(trainer_mode=trainer_mode, sampler_kwargs=sampler_kwargs, settings=settings, **kwargs)
        klass = MinimalRLReplayBuffer if trainer_mode == "sync" else MinimalRLReplayBufferAsync
        return klass(trainer_mode=trainer_mode, sampler_kwargs=sampler_kwargs, settings=settings, **kwargs)
