"""EXPERIMENTAL: ``filter_mode=refill`` - rejected groups are replaced by fresh prompts, DAPO-style.

It shares the selection machinery of `verl_ext.selection` with the drop sampler (`verl_ext.sampler`, which
builds this one for refill mode). The drop sampler uses only verl's public ``sample()``. Refilling cannot: it has to tell verl's
replay buffer, while it waits for enough finished groups, which of them are rejected, so that verl evicts them
and asks the trainer for new prompts. verl exposes that only through private methods of its buffer
(``_dapo_filtered_keys``, ``_clear_groups``) and its metadata snapshot (``finished_keys``, ``partitions``), and
it builds a custom sampler without the DAPO constructor arguments (``filter_groups_metric``, ``train_batch_size``,
``gen_batch_size``, ...), so this module re-derives them from ``sampler_kwargs`` with verl 0.9's own rules.
That is why it is experimental and refuses any verl outside the tested range (`check_verl_version`).

Also handled here, because they share that machinery: verl's own DAPO group filtering
(``algorithm.filter_groups.enable=true``, passed through) and ``trainer.v1.sampler.sync_refill_failed_groups``.

Refill evicts whole groups the sample filter rejects (every response of the group rejected) and refills at most
``max_refill_batches x batch_size`` extra prompts per step (verl enforces no cap: `RefillLimitError` past it);
partially rejected groups (RAFT's wrong answers) are dropped as in drop mode.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from typing import Any

from omegaconf import DictConfig
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.replay_buffer import FILTER_GROUPS_REWARD_METRIC, ReplayBuffer, ReplayBufferAsync

# Shared with trl_ext's refill (same default, same error); importable from here as before.
from minimal_rl.filtering import DEFAULT_MAX_REFILL_BATCHES, RefillLimitError  # noqa: F401
from minimal_rl.table import SAMPLE_FILTERS

from .private_api import check_tested_verl
from .selection import METRIC_PREFIX, BatchSelection, SamplerSettings, SessionRecord, sequence_scores, sessions_of, uid_of

logger = logging.getLogger(__name__)

def check_verl_version(verl_version: str | None = None) -> None:
    """Raise RuntimeError unless verl (default: the installed one) is in the range this module was tested with."""
    check_tested_verl(
        "filter_mode=refill (and DAPO / failed-group refill with the minimal-rl sampler)",
        "Use filter_mode=drop (public sampler API only), or install a tested verl.", verl_version,
    )


class _RefillMixin:
    """Refill through verl's DAPO path (mixed in before verl's buffer class)."""

    def __init__(
        self,
        trainer_mode: str,
        trainer_config: Any,
        max_off_policy_threshold: int | None,
        max_off_policy_strategy: str,
        sampler_kwargs: Any,
        settings: SamplerSettings,
        poll_interval: float = 2.0,
        refill_fn=None,
        **verl_kwargs: Any,
    ):
        check_verl_version()
        self.settings = settings
        self.selection = BatchSelection(settings)
        raw = settings.raw
        self._sampler_kwargs_node = sampler_kwargs
        filter_groups = dict(raw.get("filter_groups") or {})
        self._user_dapo_metric = None
        if filter_groups.get("enable", False):
            self._user_dapo_metric = filter_groups.get("metric")
            if not self._user_dapo_metric:
                raise ValueError("algorithm.filter_groups.metric must be set when group filtering is enabled")
        self.sync_refill_failed = bool(raw.get("sync_refill_failed_groups") or False)
        max_refill = raw.get("max_refill_batches")
        self.max_refill_batches = DEFAULT_MAX_REFILL_BATCHES if max_refill is None else int(max_refill)
        if self.max_refill_batches < 0:
            raise ValueError(f"max_refill_batches must be >= 0, got {self.max_refill_batches}")
        self.train_batch_size_setting = None if raw.get("train_batch_size") is None else int(raw["train_batch_size"])
        self._single_prompt_fetches = trainer_mode != "sync" or self._user_dapo_metric is not None or self.sync_refill_failed
        self._trainer_refill_fn = refill_fn
        self._refill_rejected_groups = (
            settings.options.filter_mode == "refill" and SAMPLE_FILTERS[settings.sample_filter].can_reject_whole_groups
        )
        if settings.options.filter_mode == "refill" and not self._refill_rejected_groups:
            logger.warning(
                "minimal-rl sampler: filter_mode='refill' with sample filter %r rejects no whole groups; nothing to refill",
                settings.sample_filter,
            )
        metric = self._user_dapo_metric or (FILTER_GROUPS_REWARD_METRIC if self._refill_rejected_groups else None)
        if metric is not None and self.train_batch_size_setting is None and trainer_mode == "sync":
            raise ValueError(
                "the minimal-rl sampler needs sampler_kwargs.train_batch_size (`${data.train_batch_size}`) for "
                "filter_mode='refill' or algorithm.filter_groups in the sync trainer"
            )
        buffer_kwargs = dict(
            trainer_mode=trainer_mode, trainer_config=trainer_config, max_off_policy_threshold=max_off_policy_threshold,
            max_off_policy_strategy=max_off_policy_strategy, sampler_kwargs=sampler_kwargs, poll_interval=poll_interval,
            refill_fn=self._counted_refill if refill_fn is not None else None, filter_groups_metric=metric,
            sync_refill_failed_groups=self.sync_refill_failed,
        )
        if trainer_mode == "sync":
            # verl's sync loop dispatches refills in multiples of gen_batch_size; `_counted_refill` rounds each
            # request up to the dataloader's real granularity, so 1 is always safe here.
            buffer_kwargs.update(
                train_batch_size=self.train_batch_size_setting,
                gen_batch_size=1 if (metric or self.sync_refill_failed) else None,
                max_inflight_gen_batches=int(filter_groups.get("max_inflight_gen_batches", 1) or 1) if metric else 1,
            )
        buffer_kwargs.update(verl_kwargs)
        super().__init__(**buffer_kwargs)
        # uid -> (rejected as a whole group?, its session records), for finished groups (immutable).
        self._rejection_cache: dict[str, dict[str, tuple[bool, list[SessionRecord]]]] = defaultdict(dict)
        self._evicted_sessions: list[SessionRecord] = []
        self._refill_calls = 0
        self._refill_prompts = 0
        self._refill_batch_size: int | None = None
        logger.warning(
            "minimal-rl sampler (EXPERIMENTAL refill): estimator=%s sample_filter=%s filter_mode=%s "
            "max_refill_batches=%d DAPO passthrough=%s",
            settings.estimator, settings.sample_filter, settings.options.filter_mode, self.max_refill_batches,
            self._user_dapo_metric,
        )

    # ---------------------------------------------------------------- refill (capped)

    def _dataloader_gen_batch_size(self) -> int:
        """The dataloader's fetch granularity, read lazily: verl may set it to 1 after building us."""
        node = self._sampler_kwargs_node
        value = None
        if isinstance(node, DictConfig) and "gen_batch_size" in node:
            value = node.gen_batch_size
        elif isinstance(node, dict):
            value = node.get("gen_batch_size")
        if value is None:
            # verl's own rule (_init_dataloader): exact single-prompt fetches for async trainers, DAPO and
            # failed-group refill; otherwise whole train batches.
            value = 1 if self._single_prompt_fetches else (self.train_batch_size_setting or 1)
        return max(int(value), 1)

    def _counted_refill(self, num_prompts: int) -> int:
        """verl's refill, rounded up to whole dataloader fetches, with the cap verl does not enforce."""
        granularity = self._dataloader_gen_batch_size()
        request = math.ceil(num_prompts / granularity) * granularity
        unit = self._refill_batch_size or self.train_batch_size_setting or request
        cap = self.max_refill_batches * unit
        if self._refill_prompts + request > cap:
            raise RefillLimitError(
                f"minimal-rl sampler: refilling rejected groups would exceed max_refill_batches="
                f"{self.max_refill_batches} ({cap} extra prompts for a step of {unit} prompts; "
                f"{self._refill_prompts} already requested in {self._refill_calls} refill call(s)). "
                "Too few groups survive the filter: make the prompts easier or the model stronger, use "
                "filter_mode=drop, or raise trainer.v1.sampler.sampler_kwargs.max_refill_batches."
            )
        self._refill_calls += 1
        self._refill_prompts += request
        return self._trainer_refill_fn(request)

    # ---------------------------------------------------------------- verl's private hooks

    def _dapo_filtered_keys(self, partition_id: str) -> tuple[set[str], Counter]:
        uids, counts = set(), Counter()
        if self._user_dapo_metric is not None:
            uids, counts = super()._dapo_filtered_keys(partition_id)
        if partition_id != "val" and self._refill_rejected_groups:
            uids = uids | self._rejected_whole_groups(partition_id)
        return uids, counts

    def _rejected_whole_groups(self, partition_id: str) -> set[str]:
        """Finished groups in which the filter keeps no response (refill mode evicts these)."""
        finished = self.finished_keys[partition_id]
        cache = self._rejection_cache[partition_id]
        for uid in cache.keys() - finished:
            del cache[uid]
        new_uids = finished - cache.keys()
        if new_uids:
            keys = [k for k in self.partitions[partition_id] if uid_of(k) in new_uids]
            tags = [self.partitions[partition_id][k] for k in keys]
            scores = sequence_scores(keys, partition_id) if keys else []
            records, _ = sessions_of(keys, tags, scores)
            by_uid: dict[str, list[SessionRecord]] = defaultdict(list)
            for record in records.values():
                by_uid[record.uid].append(record)
            for uid in new_uids:
                group = by_uid.get(uid, [])
                if not group:  # a failed group without trajectories: verl's failure handling owns it
                    cache[uid] = (False, [])
                    continue
                result = self.settings.weights([s.score for s in group], [s.uid for s in group])
                cache[uid] = (not bool(result.keep.any()), group)
        return {uid for uid, (is_rejected, _) in cache.items() if is_rejected}

    def _clear_groups(self, partition_id: str, uids: set[str]) -> None:
        super()._clear_groups(partition_id, uids)
        cache = self._rejection_cache[partition_id]
        for uid in uids:
            entry = cache.pop(uid, None)
            if entry is not None and entry[0]:
                # An evicted rejected group: it still counts in this step's pre-filter metrics.
                self._evicted_sessions.extend(entry[1])

    # ---------------------------------------------------------------- sampling

    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[KVBatchMeta, dict]:
        if partition_id == "val":
            return super().sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        self._refill_batch_size = batch_size
        try:
            batch, metrics = super().sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
            batch, selection_metrics = self.selection.apply(batch, evicted=self._evicted_sessions)
            metrics.update(selection_metrics)
            metrics[METRIC_PREFIX + "refill_calls"] = float(self._refill_calls)
            metrics[METRIC_PREFIX + "refill_prompts"] = float(self._refill_prompts)
            metrics[METRIC_PREFIX + "refill_batches"] = self._refill_prompts / max(batch_size, 1)
            return batch, metrics
        finally:
            # Refills requested before this call (async wait_for_sampleable) counted toward this step's cap.
            self._refill_calls = 0
            self._refill_prompts = 0
            self._evicted_sessions = []


class MinimalRLRefillReplayBuffer(_RefillMixin, ReplayBuffer):
    """verl's sync `ReplayBuffer` that drops rejected samples and refills rejected groups (experimental)."""


class MinimalRLRefillReplayBufferAsync(_RefillMixin, ReplayBufferAsync):
    """verl's `ReplayBufferAsync` that drops rejected samples and refills rejected groups (experimental)."""


def build_refill_sampler(*, trainer_mode: str, **kwargs: Any):
    klass = MinimalRLRefillReplayBuffer if trainer_mode == "sync" else MinimalRLRefillReplayBufferAsync
    return klass(trainer_mode=trainer_mode, **kwargs)
