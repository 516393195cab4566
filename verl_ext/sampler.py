"""Replay-buffer samplers for verl's v1 trainers that DROP rejected samples instead of zero-weighting them.

The paper filters rejected prompts out of the update (Xiong et al., arXiv 2504.11343, Sec. 3-4); stock
verl and the paper's fork keep them with weight 0, so they still cost old-log-prob, reference and
forward/backward compute, sit in the token-mean denominator and receive KL / entropy gradients. These
samplers remove them from the batch right after verl's replay buffer selects it, before verl balances
and pads the batch, using the same keep mask the advantage estimators use
(`minimal_rl.algorithms.compute_weights(...).keep`).

Select it with (both trainer modes; the class picks the sync or async variant itself)::

    trainer.v1.sampler.custom_sampler.path=pkg://verl_ext.sampler
    trainer.v1.sampler.custom_sampler.name=MinimalRLSampler

verl hands a custom sampler only ``trainer.v1.sampler.sampler_kwargs`` (not the algorithm config), so
the options travel there, normally as interpolations of the algorithm config (the presets do this)::

    trainer.v1.sampler.sampler_kwargs:
      algorithm: ${algorithm.adv_estimator}              # required
      filter_mode: ${algorithm.minimal_rl.filter_mode}    # drop (default) | refill | zero
      positive_threshold: ${algorithm.minimal_rl.positive_threshold}
      reward_mapping: ${algorithm.minimal_rl.reward_mapping}
      nan_policy: ${algorithm.minimal_rl.nan_policy}
      max_refill_batches: 8                               # refill cap, in units of the step's prompt count
      filter_groups: ${algorithm.filter_groups}           # DAPO settings, passed through to verl's buffer
      train_batch_size: ${data.train_batch_size}
      gen_batch_size: ${oc.select:data.gen_batch_size,null}
      sync_refill_failed_groups: ${trainer.v1.sampler.sync_refill_failed_groups}
      ppo_mini_batch_size: ${actor_rollout_ref.actor.ppo_mini_batch_size}  # optional, padding metrics
      rollout_n: ${actor_rollout_ref.rollout.n}                            # optional, padding metrics

Modes:
    drop    rejected responses (RAFT / RAFT++) or groups (Reinforce-Rej and ablations) leave the batch and
            the transfer queue; the batch shrinks and verl pads it to its required multiple with
            synthetic rows whose loss mask is 0.
    refill  groups whose every response is rejected are evicted and replaced by fresh prompts through
            verl's own DAPO refill path, at most ``max_refill_batches x batch_size`` extra prompts per
            step (verl enforces no cap); partially rejected groups (RAFT's wrong answers) are dropped.
    zero    nothing is dropped (the paper's fork); the estimator gives rejected samples weight 0.

Every training step logs ``minimal_rl/*`` metrics (see `FilterOutcome.metrics`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
import transfer_queue as tq
from omegaconf import DictConfig, ListConfig, OmegaConf
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

from minimal_rl.algorithms import ALGORITHMS, compute_weights

from .options import DEFAULT_FILTER_MODE, FILTER_MODES  # one definition, shared with the estimators

logger = logging.getLogger(__name__)

DEFAULT_MAX_REFILL_BATCHES = 8
METRIC_PREFIX = "minimal_rl/"
# verl's canonical DAPO metric name: the pre-KL sequence reward summed from ``rm_scores``.
_CANONICAL_REWARD_METRIC = "reward"


class RefillLimitError(RuntimeError):
    """Raised when refilling rejected groups needs more extra prompts than the configured cap."""


# --------------------------------------------------------------------------------------------
# Coordination with the advantage estimators (same process: verl's trainer / TaskRunner)
# --------------------------------------------------------------------------------------------

_active_lock = threading.Lock()
_active_filter_mode: str | None = None
_fallback_warned = False

LEGACY_FALLBACK_MESSAGE = (
    "minimal-rl: filter_mode={mode!r} needs the minimal-rl replay-buffer sampler, which is not active "
    "(legacy trainer `trainer.use_v1=False` has no sampler hook, or "
    "`trainer.v1.sampler.custom_sampler` is not set to pkg://verl_ext.sampler / MinimalRLSampler). "
    "Falling back to filter_mode='zero': rejected samples get weight 0 but still cost old-log-prob, "
    "reference and forward/backward compute, still count in the token-mean denominator (diluting the "
    "gradient by the kept-token fraction) and still receive KL / entropy gradients."
)


def _register_active_sampler(mode: str) -> None:
    global _active_filter_mode
    with _active_lock:
        _active_filter_mode = mode


def active_filter_mode() -> str | None:
    """The filter mode of the minimal-rl sampler built in this process, or None when there is none."""
    return _active_filter_mode


def filter_mode_in_effect(requested: str | None = DEFAULT_FILTER_MODE) -> str:
    """The filter mode that actually applies, for the advantage estimators to call.

    ``drop`` and ``refill`` happen in the replay-buffer sampler; without it (legacy trainer, or v1 without
    ``custom_sampler``) they cannot, and this returns ``"zero"`` after one warning saying what is lost.
    The estimators zero the weights of rejected samples in every mode, so the answer only decides
    whether rejected rows can still be in the batch they see.
    """
    global _fallback_warned
    mode = _validate_mode(requested)
    if mode == "zero":
        return mode
    active = _active_filter_mode
    if active is not None:
        return active
    with _active_lock:
        if not _fallback_warned:
            _fallback_warned = True
            logger.warning(LEGACY_FALLBACK_MESSAGE.format(mode=mode))
    return "zero"


def _validate_mode(mode: str | None) -> str:
    mode = DEFAULT_FILTER_MODE if mode is None else str(mode).lower()
    if mode not in FILTER_MODES:
        raise ValueError(f"filter_mode must be one of {FILTER_MODES}, got {mode!r}")
    return mode


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass
class SamplerOptions:
    """Parsed ``trainer.v1.sampler.sampler_kwargs``."""

    algorithm: str | None  # core algorithm name, None for an estimator that filters nothing (gae, ...)
    estimator: str
    filter_mode: str = DEFAULT_FILTER_MODE
    positive_threshold: float = 0.0
    reward_mapping: str = "signed"
    nan_policy: str = "wrong"
    max_refill_batches: int = DEFAULT_MAX_REFILL_BATCHES
    filter_groups: dict = field(default_factory=dict)
    train_batch_size: int | None = None
    sync_refill_failed_groups: bool = False
    # verl pads the batch to a multiple of ppo_mini_batch_size x rollout.n rows (and dp size); given both,
    # the sampler reports how many padding rows that will be.
    ppo_mini_batch_size: int | None = None
    rollout_n: int | None = None

    @property
    def mini_batch_rows(self) -> int | None:
        if self.ppo_mini_batch_size and self.rollout_n:
            return int(self.ppo_mini_batch_size) * int(self.rollout_n)
        return None

    @property
    def dapo_metric(self) -> str | None:
        """verl's DAPO metric when ``algorithm.filter_groups.enable`` is set (passed through)."""
        if not self.filter_groups.get("enable", False):
            return None
        metric = self.filter_groups.get("metric")
        if not metric:
            raise ValueError("algorithm.filter_groups.metric must be set when group filtering is enabled")
        return str(metric)

    @classmethod
    def parse(cls, sampler_kwargs: Any) -> SamplerOptions:
        raw = _to_plain(sampler_kwargs, skip=("gen_batch_size",))
        known = {
            "algorithm",
            "filter_mode",
            "positive_threshold",
            "reward_mapping",
            "nan_policy",
            "max_refill_batches",
            "filter_groups",
            "train_batch_size",
            "gen_batch_size",
            "sync_refill_failed_groups",
            "ppo_mini_batch_size",
            "rollout_n",
        }
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown minimal-rl sampler_kwargs {sorted(unknown)}; valid keys: {sorted(known)}")
        estimator = raw.get("algorithm")
        if not estimator:
            raise ValueError(
                "the minimal-rl sampler needs trainer.v1.sampler.sampler_kwargs.algorithm "
                "(normally `${algorithm.adv_estimator}`, as the +minimal_rl presets set it)"
            )
        estimator = str(estimator).lower()
        # verl_ext registers its estimators under the core names (RAFT++ is estimator ``raft`` + PPO loss).
        algorithm = estimator
        if algorithm not in ALGORITHMS:
            logger.warning(
                "minimal-rl sampler: estimator %r is not a minimal-rl algorithm; nothing will be filtered "
                "(metrics are still logged)",
                estimator,
            )
            algorithm = None
        max_refill = raw.get("max_refill_batches")
        max_refill = DEFAULT_MAX_REFILL_BATCHES if max_refill is None else int(max_refill)
        if max_refill < 0:
            raise ValueError(f"max_refill_batches must be >= 0, got {max_refill}")
        return cls(
            algorithm=algorithm,
            estimator=estimator,
            filter_mode=_validate_mode(raw.get("filter_mode")),
            positive_threshold=float(_default(raw.get("positive_threshold"), 0.0)),
            reward_mapping=str(_default(raw.get("reward_mapping"), "signed")),
            nan_policy=str(_default(raw.get("nan_policy"), "wrong")),
            max_refill_batches=max_refill,
            filter_groups=dict(_default(raw.get("filter_groups"), {})),
            train_batch_size=None if raw.get("train_batch_size") is None else int(raw["train_batch_size"]),
            sync_refill_failed_groups=bool(_default(raw.get("sync_refill_failed_groups"), False)),
            ppo_mini_batch_size=None if raw.get("ppo_mini_batch_size") is None else int(raw["ppo_mini_batch_size"]),
            rollout_n=None if raw.get("rollout_n") is None else int(raw["rollout_n"]),
        )


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _to_plain(node: Any, skip: tuple[str, ...] = ()) -> dict:
    """sampler_kwargs as a plain dict, interpolations resolved (except ``skip``: read lazily)."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        out = {}
        for key in node.keys():
            if key in skip:
                out[key] = None
                continue
            value = node[key]
            out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value
        return out
    return dict(node)


# --------------------------------------------------------------------------------------------
# The filter itself
# --------------------------------------------------------------------------------------------


@dataclass
class _SessionRecord:
    """One rollout session ({uid}_{session}): the unit the estimators weigh (verl's final output)."""

    uid: str
    score: float
    response_tokens: int


@dataclass
class FilterOutcome:
    """What the filter did to one sampled batch."""

    batch: KVBatchMeta
    metrics: dict[str, float]


def _session_key(key: str) -> str:
    parts = key.rsplit("_", 2)
    return f"{parts[0]}_{parts[1]}" if len(parts) == 3 else key


def _uid(key: str) -> str:
    return key.split("_")[0]


def _sequence_scores(keys: list[str], partition_id: str) -> list[float]:
    """Sequence reward of each trajectory: ``rm_scores`` summed over tokens (verl's canonical DAPO reward)."""
    data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["rm_scores"])
    rm_scores = data["rm_scores"]
    rows = rm_scores.unbind() if getattr(rm_scores, "is_nested", False) else list(rm_scores)
    return [float(torch.as_tensor(row).sum()) for row in rows]


def _sessions(keys: list[str], tags: list[dict], scores: list[float]) -> tuple[dict[str, _SessionRecord], list[str]]:
    """Group trajectories into sessions; a session's score is its final output's (verl's GRPO rule)."""
    final_index: dict[str, int] = {}
    records: dict[str, _SessionRecord] = {}
    row_sessions = []
    for key, tag, score in zip(keys, tags, scores, strict=True):
        session = _session_key(key)
        row_sessions.append(session)
        parts = key.rsplit("_", 2)
        index = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 0
        tokens = int(tag.get("response_len", 0) or 0)
        record = records.get(session)
        if record is None:
            records[session] = _SessionRecord(uid=_uid(key), score=score, response_tokens=tokens)
            final_index[session] = index
        else:
            record.response_tokens += tokens
            if index > final_index[session]:
                final_index[session] = index
                record.score = score
    return records, row_sessions


class _MinimalRLFilterMixin:
    """Filtering shared by the sync and async samplers (mixed in before verl's buffer class)."""

    def __init__(
        self,
        trainer_mode: str,
        trainer_config: Any,
        max_off_policy_threshold: int | None,
        max_off_policy_strategy: str,
        sampler_kwargs: Any,
        poll_interval: float = 2.0,
        refill_fn=None,
        **verl_kwargs: Any,
    ):
        self.options = SamplerOptions.parse(sampler_kwargs)
        self._sampler_kwargs_node = sampler_kwargs
        self._verl_forces_single_prompt_fetches = (
            trainer_mode != "sync" or _dapo_enabled(self.options) or self.options.sync_refill_failed_groups
        )
        self._trainer_refill_fn = refill_fn
        opts = self.options
        dapo_metric = opts.dapo_metric
        # Refill evicts whole groups through verl's DAPO path; only algorithms that can reject whole groups
        # (everything but the keep-everything ones) have anything to refill.
        self._refill_rejected_groups = (
            opts.filter_mode == "refill" and opts.algorithm is not None and _can_reject_groups(opts.algorithm)
        )
        if opts.filter_mode == "refill" and not self._refill_rejected_groups:
            logger.warning(
                "minimal-rl sampler: filter_mode='refill' with estimator %r rejects no whole groups; nothing to refill",
                opts.estimator,
            )
        self._user_dapo_metric = dapo_metric
        filter_groups_metric = dapo_metric or (_CANONICAL_REWARD_METRIC if self._refill_rejected_groups else None)
        train_batch_size = opts.train_batch_size
        if filter_groups_metric is not None and train_batch_size is None and trainer_mode == "sync":
            raise ValueError(
                "the minimal-rl sampler needs sampler_kwargs.train_batch_size (`${data.train_batch_size}`) for "
                "filter_mode='refill' or algorithm.filter_groups in the sync trainer"
            )
        buffer_kwargs = dict(
            trainer_mode=trainer_mode,
            trainer_config=trainer_config,
            max_off_policy_threshold=max_off_policy_threshold,
            max_off_policy_strategy=max_off_policy_strategy,
            sampler_kwargs=sampler_kwargs,
            poll_interval=poll_interval,
            refill_fn=self._counted_refill if refill_fn is not None else None,
            filter_groups_metric=filter_groups_metric,
            sync_refill_failed_groups=opts.sync_refill_failed_groups,
        )
        if trainer_mode == "sync":
            # verl's sync loop dispatches refills in multiples of this; `_counted_refill` rounds each request
            # up to the dataloader's real granularity, so 1 is always safe here.
            buffer_kwargs.update(
                train_batch_size=train_batch_size,
                gen_batch_size=1 if (filter_groups_metric or opts.sync_refill_failed_groups) else None,
                max_inflight_gen_batches=int(opts.filter_groups.get("max_inflight_gen_batches", 1) or 1)
                if filter_groups_metric
                else 1,
            )
        buffer_kwargs.update(verl_kwargs)
        super().__init__(**buffer_kwargs)
        # uid -> (rejected as a whole group?, its session records), for finished groups (immutable).
        self._rejection_cache: dict[str, dict[str, tuple[bool, list[_SessionRecord]]]] = defaultdict(dict)
        self._evicted_sessions: list[_SessionRecord] = []
        self._refill_calls = 0
        self._refill_prompts = 0
        self._refill_batch_size: int | None = None
        self._filter_unavailable_warned = False
        _register_active_sampler(opts.filter_mode)
        logger.info(
            "minimal-rl sampler: estimator=%s filter_mode=%s max_refill_batches=%d (DAPO passthrough: %s)",
            opts.estimator,
            opts.filter_mode,
            opts.max_refill_batches,
            dapo_metric,
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
            value = 1 if self._verl_forces_single_prompt_fetches else (self.options.train_batch_size or 1)
        return max(int(value), 1)

    def _counted_refill(self, num_prompts: int) -> int:
        """verl's refill, rounded up to whole dataloader fetches, with the cap verl does not enforce."""
        granularity = self._dataloader_gen_batch_size()
        request = math.ceil(num_prompts / granularity) * granularity
        unit = self._refill_batch_size or self.options.train_batch_size or request
        cap = self.options.max_refill_batches * unit
        if self._refill_prompts + request > cap:
            raise RefillLimitError(
                f"minimal-rl sampler: refilling rejected groups would exceed max_refill_batches="
                f"{self.options.max_refill_batches} ({cap} extra prompts for a step of {unit} prompts; "
                f"{self._refill_prompts} already requested in {self._refill_calls} refill call(s)). "
                "Too few groups survive the filter: make the prompts easier or the model stronger, use "
                "filter_mode=drop, or raise trainer.v1.sampler.sampler_kwargs.max_refill_batches."
            )
        self._refill_calls += 1
        self._refill_prompts += request
        return self._trainer_refill_fn(request)

    def _dapo_filtered_keys(self, partition_id: str) -> tuple[set[str], Counter]:
        uids, counts = set(), Counter()
        if self._user_dapo_metric is not None:
            uids, counts = super()._dapo_filtered_keys(partition_id)
        if partition_id != "val" and self._refill_rejected_groups:
            uids = uids | self._rejected_whole_groups(partition_id)
        return uids, counts

    def _rejected_whole_groups(self, partition_id: str) -> set[str]:
        """Finished groups in which the algorithm keeps no response (refill mode evicts these)."""
        finished = self.finished_keys[partition_id]
        cache = self._rejection_cache[partition_id]
        for uid in cache.keys() - finished:
            del cache[uid]
        new_uids = finished - cache.keys()
        if new_uids:
            keys = [k for k in self.partitions[partition_id] if _uid(k) in new_uids]
            tags = [self.partitions[partition_id][k] for k in keys]
            scores = _sequence_scores(keys, partition_id) if keys else []
            records, _ = _sessions(keys, tags, scores)
            by_uid: dict[str, list[_SessionRecord]] = defaultdict(list)
            for record in records.values():
                by_uid[record.uid].append(record)
            for uid in new_uids:
                group = by_uid.get(uid, [])
                if not group:  # a failed group without trajectories: verl's failure handling owns it
                    cache[uid] = (False, [])
                    continue
                result = self._weights(group)
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
            outcome = self.filter_batch(batch)
            metrics.update(outcome.metrics)
            metrics[METRIC_PREFIX + "refill_calls"] = float(self._refill_calls)
            metrics[METRIC_PREFIX + "refill_prompts"] = float(self._refill_prompts)
            metrics[METRIC_PREFIX + "refill_batches"] = self._refill_prompts / max(batch_size, 1)
            return outcome.batch, metrics
        finally:
            # Refills requested before this call (async wait_for_sampleable) counted toward this step's cap.
            self._refill_calls = 0
            self._refill_prompts = 0
            self._evicted_sessions = []

    def _weights(self, sessions: list[_SessionRecord]):
        opts = self.options
        return compute_weights(
            torch.tensor([s.score for s in sessions], dtype=torch.float32),
            opts.algorithm or "reinforce",  # keep-everything stand-in for estimators we do not filter
            [s.uid for s in sessions],
            positive_threshold=opts.positive_threshold,
            reward_mapping=opts.reward_mapping,
            nan_policy=opts.nan_policy,
        )

    def filter_batch(self, batch: KVBatchMeta) -> FilterOutcome:
        """Drop the rejected rows of a sampled batch (modes ``drop`` / ``refill``), clear them from the
        transfer queue, and compute the ``minimal_rl/*`` metrics. Never returns an empty batch."""
        if len(batch) == 0:
            return FilterOutcome(batch, {})
        try:
            scores = _sequence_scores(list(batch.keys), batch.partition_id)
        except Exception as err:  # rm_scores not computed yet: colocated reward model scores after sampling
            if not self._filter_unavailable_warned:
                self._filter_unavailable_warned = True
                logger.warning(
                    "minimal-rl sampler: no rm_scores at sampling time (%s); nothing can be dropped, falling back "
                    "to filter_mode='zero'. Use a rule-based reward or reward.reward_model.enable_resource_pool=True.",
                    err,
                )
            return FilterOutcome(batch, {METRIC_PREFIX + "filter_unavailable": 1.0})

        records, row_sessions = _sessions(list(batch.keys), list(batch.tags), scores)
        session_names = list(records)
        sessions = [records[s] for s in session_names]
        result = self._weights(sessions)
        keep_session = dict(zip(session_names, result.keep.tolist(), strict=True))

        # Pre-filter statistics over everything generated for this step, refilled-away groups included.
        everything = self._evicted_sessions + sessions
        pre = self._weights(everything) if self._evicted_sessions else result
        pre_metrics = pre.metrics(torch.tensor([s.response_tokens for s in everything], dtype=torch.float64))

        row_keep = [keep_session[s] for s in row_sessions]
        if self.options.filter_mode == "zero" or self.options.algorithm is None:
            row_in_update = [True] * len(row_keep)
        else:
            row_in_update = list(row_keep)
        all_rejected = not any(row_keep)
        placeholder = 0
        if all_rejected and not any(row_in_update):
            # Every response is rejected. verl's step cannot run on an empty (or padding-only) batch, so keep
            # the cheapest session as a placeholder: the estimator gives it weight 0 (its policy-gradient
            # term vanishes) and its tokens keep verl's token-mean denominator non-zero.
            cheapest = min(session_names, key=lambda s: records[s].response_tokens)
            row_in_update = [s == cheapest for s in row_sessions]
            placeholder = sum(row_in_update)
            logger.warning(
                "minimal-rl sampler: every response of this step is rejected by %s (%d groups); the update runs "
                "on a %d-row zero-weight placeholder (metric minimal_rl/all_rejected=1)",
                self.options.estimator,
                result.stats.num_groups,
                placeholder,
            )

        dropped = [k for k, used in zip(batch.keys, row_in_update, strict=True) if not used]
        if dropped:
            tq.kv_clear(keys=dropped, partition_id=batch.partition_id)
            kept_pairs = [(k, t) for k, t, used in zip(batch.keys, batch.tags, row_in_update, strict=True) if used]
            batch = KVBatchMeta(
                partition_id=batch.partition_id,
                keys=[k for k, _ in kept_pairs],
                tags=[t for _, t in kept_pairs],
                fields=batch.fields,
                extra_info=batch.extra_info,
            )

        row_tokens = [int(t.get("response_len", 0) or 0) for t in batch.tags]
        total_rows = len(row_keep)
        total_tokens = sum(records[s].response_tokens for s in session_names)
        kept_tokens = sum(records[s].response_tokens for s in session_names if keep_session[s])
        p = METRIC_PREFIX
        metrics = {
            p + "groups_all_correct": pre_metrics["groups_all_correct"],
            p + "groups_all_wrong": pre_metrics["groups_all_wrong"],
            p + "groups_mixed": pre_metrics["groups_mixed"],
            p + "groups_generated": pre_metrics["num_groups"],
            p + "accuracy_before_filter": pre_metrics["accuracy"],
            p + "samples_kept": float(sum(row_keep)),
            p + "samples_kept_frac": sum(row_keep) / max(total_rows, 1),
            p + "tokens_kept": float(kept_tokens),
            p + "tokens_kept_frac": kept_tokens / total_tokens if total_tokens > 0 else 0.0,
            p + "samples_in_update": float(len(batch)),
            p + "tokens_in_update": float(sum(row_tokens)),
            p + "samples_dropped": float(len(dropped)),
            p + "all_rejected": float(all_rejected),
            p + "placeholder_samples": float(placeholder),
            p + "weight_mean": float(result.metrics()["weight_mean"]),
        }
        multiple = self.options.mini_batch_rows
        if multiple:
            # What verl's upsample_batch_to_divisible_size will add (exact when dp size divides the mini-batch).
            metrics[p + "padding_samples"] = float((-len(batch)) % multiple)
            metrics[p + "mini_batches"] = float(math.ceil(len(batch) / multiple))
        return FilterOutcome(batch, metrics)


def _dapo_enabled(options: SamplerOptions) -> bool:
    return options.dapo_metric is not None


def _can_reject_groups(algorithm: str) -> bool:
    """True when some score pattern makes the algorithm keep no response of a group."""
    algo = ALGORITHMS[algorithm]
    # RAFT drops every wrong answer, so all-wrong groups vanish too; group filters drop groups by design.
    return algo.filters_groups or algo.keep is ALGORITHMS["raft"].keep


class MinimalRLReplayBuffer(_MinimalRLFilterMixin, ReplayBuffer):
    """verl's sync `ReplayBuffer` that drops rejected samples (see the module docstring)."""


class MinimalRLReplayBufferAsync(_MinimalRLFilterMixin, ReplayBufferAsync):
    """verl's `ReplayBufferAsync` (colocate_async / separate_async trainers) that drops rejected samples."""


class MinimalRLSampler:
    """The class to name in ``trainer.v1.sampler.custom_sampler.name``: builds the sync or async variant
    for ``trainer_mode`` (verl instantiates one class for every trainer mode)."""

    def __new__(cls, *, trainer_mode: str, **kwargs: Any):
        klass = MinimalRLReplayBuffer if trainer_mode == "sync" else MinimalRLReplayBufferAsync
        return klass(trainer_mode=trainer_mode, **kwargs)
