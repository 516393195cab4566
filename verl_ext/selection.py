"""The selection machinery both minimal-rl samplers share (`verl_ext.sampler`, drop; `verl_ext.refill`, refill):
``sampler_kwargs`` parsed once (`SamplerSettings`), the rollout sessions of a sampled batch and their scores
from TransferQueue, the keep mask of `minimal_rl.algorithms.compute_weights` (the estimators' own), the cheap
padding rows, and `BatchSelection.apply`, which removes the rejected rows of one batch and logs the
``sample_filter/*`` metrics (names: `minimal_rl.metrics`). Nothing here subclasses verl's replay buffer; the samplers do.

verl >= 0.9 only (TransferQueue and the v1 trainer's padding helpers).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

import torch
import transfer_queue as tq
from omegaconf import DictConfig, ListConfig, OmegaConf
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.padding_utils import build_padding_position_ids, construct_minimal_padding_template
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from minimal_rl.algorithms import WeightResult, compute_weights
from minimal_rl.filtering import EmptySelectionWatch
from minimal_rl.metrics import PREFIX as METRIC_PREFIX

from .adaptive import PADDING_UID_PREFIX, with_pool_weights
from .options import MinimalRLOptions, options_from_block, sample_filter_in_effect

logger = logging.getLogger(__name__)

# The cheap padding rows: one prompt token and one (masked) response token.
PADDING_ROW_TOKENS = 2
_REFILL_KEYS = ("max_refill_batches", "filter_groups", "train_batch_size", "gen_batch_size", "sync_refill_failed_groups")


# --------------------------------------------------------------------------------------------
# Settings: sampler_kwargs, parsed once
# --------------------------------------------------------------------------------------------


def _plain(node: Any, skip: tuple[str, ...] = ()) -> dict:
    """sampler_kwargs as a plain dict, interpolations resolved (except ``skip``: read lazily)."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        out = {}
        for key in node.keys():
            value = None if key in skip else node[key]
            out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value
        return out
    return dict(node)


@dataclass(frozen=True)
class SamplerSettings:
    """``trainer.v1.sampler.sampler_kwargs``, parsed once (the refill keys stay raw for `verl_ext.refill`)."""

    estimator: str  # algorithm.adv_estimator
    algorithm: str  # the table algorithm whose weights and default filter decide (grpo for verl's own estimators)
    options: MinimalRLOptions
    sample_filter: str  # the filter in effect (the option, or the algorithm's default)
    padding_multiple: int | None  # verl's required row multiple, when known
    mini_batch_rows: int | None  # rows of one PPO mini-batch (ppo_mini_batch_size x rollout.n), when known
    raw: dict

    @classmethod
    def parse(cls, sampler_kwargs: Any) -> SamplerSettings:
        raw = _plain(sampler_kwargs, skip=("gen_batch_size",))
        known = {"algorithm", "minimal_rl", "ppo_mini_batch_size", "rollout_n", "nnodes", "n_gpus_per_node", *_REFILL_KEYS}
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
        options = options_from_block(raw.get("minimal_rl"))
        algorithm, sample_filter = sample_filter_in_effect(estimator, options)
        mini_batch, n = raw.get("ppo_mini_batch_size"), raw.get("rollout_n")
        multiple = mini_batch_rows = None
        if mini_batch and n:
            # verl pads to lcm(dp size, actor mini-batch rows); the world size is a multiple of the dp size.
            mini_batch_rows = int(mini_batch) * int(n)
            world_size = int(raw.get("nnodes") or 1) * int(raw.get("n_gpus_per_node") or 1)
            multiple = math.lcm(mini_batch_rows, world_size)
        return cls(estimator, algorithm, options, sample_filter, multiple, mini_batch_rows, raw)

    def weights(self, scores: list[float], uids: list[str]) -> WeightResult:
        opts = self.options
        result = compute_weights(
            torch.tensor(scores, dtype=torch.float32),
            self.algorithm,
            uids,
            sample_filter=self.sample_filter,
            positive_threshold=opts.positive_threshold,
            reward_mapping=opts.reward_mapping,
            nan_policy=opts.nan_policy,
        )
        return with_pool_weights(result, uids, opts, self.algorithm)  # the estimator's weights, for weight_mean


# --------------------------------------------------------------------------------------------
# One sampled batch: sessions, the filter, the drop
# --------------------------------------------------------------------------------------------


@dataclass
class SessionRecord:
    """One rollout session ({uid}_{session}): the unit the estimators weigh (verl's final output)."""

    uid: str
    score: float
    response_tokens: int


def _session_key(key: str) -> str:
    parts = key.rsplit("_", 2)
    return f"{parts[0]}_{parts[1]}" if len(parts) == 3 else key


def uid_of(key: str) -> str:
    """The prompt uid of a TransferQueue key ``{uid}_{session}_{index}`` (verl's documented format)."""
    return key.split("_")[0]


def sequence_scores(keys: list[str], partition_id: str) -> list[float]:
    """Sequence reward of each trajectory: ``rm_scores`` summed over tokens (verl's canonical DAPO reward)."""
    data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["rm_scores"])
    rm_scores = data["rm_scores"]
    rows = rm_scores.unbind() if getattr(rm_scores, "is_nested", False) else list(rm_scores)
    return [float(torch.as_tensor(row).sum()) for row in rows]


def sessions_of(keys: list[str], tags: list[dict], scores: list[float]) -> tuple[dict[str, SessionRecord], list[str]]:
    """Group trajectories into sessions; a session's score is its final output's (verl's GRPO rule)."""
    final_index: dict[str, int] = {}
    records: dict[str, SessionRecord] = {}
    row_sessions = []
    for key, tag, score in zip(keys, tags, scores, strict=True):
        session = _session_key(key)
        row_sessions.append(session)
        parts = key.rsplit("_", 2)
        index = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 0
        tokens = int(tag.get("response_len", 0) or 0)
        record = records.get(session)
        if record is None:
            records[session] = SessionRecord(uid=uid_of(key), score=score, response_tokens=tokens)
            final_index[session] = index
        else:
            record.response_tokens += tokens
            if index > final_index[session]:
                final_index[session] = index
                record.score = score
    return records, row_sessions


def padding_row_template(source: Any, source_tag: dict) -> tuple[dict, dict]:
    """A 2-token padding row (one prompt token, one response token with loss mask 0) and its tag, built from verl's
    public padding template (which zeroes rewards, masks and log-probs and tags the row ``is_padding``) and cut from
    its 128 tokens to 2. ``source``: one real row of the batch (its non-sequence fields are copied)."""
    token = int(torch.as_tensor(source["input_ids"]).reshape(-1)[0]) if "input_ids" in source.keys() else 0
    template, tag = construct_minimal_padding_template(source, source_tag, eos_token_id=token)
    one = torch.full((1,), token, dtype=torch.int64)
    attention_mask = torch.ones(PADDING_ROW_TOKENS, dtype=torch.int64)
    template.update(
        prompts=one.clone(),
        responses=one.clone(),
        input_ids=torch.cat([one, one]),
        attention_mask=attention_mask,
        position_ids=build_padding_position_ids(source.get("position_ids"), attention_mask),
        response_mask=torch.zeros(1, dtype=torch.int64),
        loss_mask=torch.zeros(1, dtype=torch.int64),
        rm_scores=torch.zeros(1, dtype=torch.float32),
        rollout_log_probs=torch.zeros(1, dtype=torch.float32),
    )
    for key in ("teacher_ids", "teacher_logprobs", "routed_experts"):  # per-token extras: cut to 2 tokens
        value = template.get(key)
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            template[key] = value[:PADDING_ROW_TOKENS].clone()
    tag.update(prompt_len=1, response_len=1, seq_len=PADDING_ROW_TOKENS)
    return template, tag


def append_padding_rows(batch: KVBatchMeta, multiple: int) -> tuple[KVBatchMeta, int]:
    """Pad ``batch`` to a multiple of ``multiple`` rows with `padding_row_template` rows, so verl's own upsampling
    (128-token rows, which cost more than the dropped rows saved when responses are short) has nothing to add."""
    missing = (-len(batch)) % multiple
    if missing == 0 or len(batch) == 0:
        return batch, 0
    source = tq.kv_batch_get(keys=[batch.keys[0]], partition_id=batch.partition_id)[0]
    template, tag = padding_row_template(source, batch.tags[0])
    pad_uid = f"{PADDING_UID_PREFIX}{uuid.uuid4().hex}"  # never a real uid: no estimator groups it with real samples
    template["uid"] = pad_uid
    keys = [f"{pad_uid}_{i}_0" for i in range(missing)]
    rows = []
    for i in range(missing):
        row = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in template.items()}
        if "session_id" in row:
            row["session_id"] = i
        rows.append(row)
    tags = [dict(tag) for _ in range(missing)]
    tq.kv_batch_put(keys=keys, partition_id=batch.partition_id, fields=list_of_dict_to_tensordict(rows), tags=tags)
    padded = KVBatchMeta(
        partition_id=batch.partition_id, keys=[*batch.keys, *keys], tags=[*batch.tags, *tags],
        fields=batch.fields, extra_info=batch.extra_info,
    )
    return padded, missing


class BatchSelection:
    """The filter applied to one sampled training batch (shared by the drop and the refill samplers)."""

    def __init__(self, settings: SamplerSettings):
        self.settings = settings
        self._unavailable_warned = False
        self.empty_watch = EmptySelectionWatch()  # says loudly when the filter keeps nothing for several steps

    def apply(self, batch: KVBatchMeta, evicted: list[SessionRecord] = ()) -> tuple[KVBatchMeta, dict[str, float]]:
        """Drop the rejected rows of ``batch`` (unless ``zero`` mode), clear them from the transfer queue, pad the
        rest cheaply, and return the ``sample_filter/*`` metrics. ``evicted``: sessions a refill already threw away
        this step (they count in the pre-filter statistics). Never returns an empty batch."""
        settings = self.settings
        if len(batch) == 0:
            return batch, {}
        try:
            scores = sequence_scores(list(batch.keys), batch.partition_id)
        except Exception as err:  # rm_scores not computed yet: a colocated reward model scores after sampling
            if not self._unavailable_warned:
                self._unavailable_warned = True
                logger.warning(
                    "minimal-rl sampler: no rm_scores at sampling time (%s); nothing can be dropped, falling back "
                    "to filter_mode='zero'. Use a rule-based reward or reward.reward_model.enable_resource_pool=True.",
                    err,
                )
            return batch, {METRIC_PREFIX + "unavailable": 1.0}

        records, row_sessions = sessions_of(list(batch.keys), list(batch.tags), scores)
        names = list(records)
        sessions = [records[s] for s in names]
        result = settings.weights([s.score for s in sessions], [s.uid for s in sessions])
        keep_session = dict(zip(names, result.keep.tolist(), strict=True))
        kept, threshold = int(result.keep.sum()), result.positive_threshold
        self.empty_watch.observe(kept, result.scores, settings.sample_filter, threshold, "verl")
        # Pre-filter statistics over everything generated for this step, refilled-away groups included.
        everything = [*evicted, *sessions]
        pre = settings.weights([s.score for s in everything], [s.uid for s in everything]) if evicted else result
        pre_metrics = pre.metrics(torch.tensor([s.response_tokens for s in everything], dtype=torch.float64))

        row_keep = [keep_session[s] for s in row_sessions]
        row_in_update = [True] * len(row_keep) if settings.options.filter_mode == "zero" else list(row_keep)
        all_rejected = not any(row_keep)
        placeholder = 0
        if not any(row_in_update):
            # verl's step cannot run on an empty (or padding-only) batch: keep the cheapest session as a
            # placeholder. The estimator gives it weight 0 (no policy-gradient term) and its tokens keep verl's
            # token-mean denominator non-zero.
            cheapest = min(names, key=lambda s: records[s].response_tokens)
            row_in_update = [s == cheapest for s in row_sessions]
            placeholder = sum(row_in_update)
            logger.warning(
                "minimal-rl sampler: every response of this step is rejected by sample filter %s (%d groups); the "
                "update runs on a %d-row zero-weight placeholder (metric %sall_rejected=1)",
                settings.sample_filter, result.stats.num_groups, placeholder, METRIC_PREFIX,
            )

        dropped = [k for k, used in zip(batch.keys, row_in_update, strict=True) if not used]
        if dropped:
            tq.kv_clear(keys=dropped, partition_id=batch.partition_id)
            pairs = [(k, t) for k, t, used in zip(batch.keys, batch.tags, row_in_update, strict=True) if used]
            batch = KVBatchMeta(
                partition_id=batch.partition_id, keys=[k for k, _ in pairs], tags=[t for _, t in pairs],
                fields=batch.fields, extra_info=batch.extra_info,
            )
        rows_in_update, tokens_in_update = len(batch), sum(int(t.get("response_len", 0) or 0) for t in batch.tags)
        padding = 0
        if dropped and settings.padding_multiple:
            batch, padding = append_padding_rows(batch, settings.padding_multiple)

        p = METRIC_PREFIX
        metrics = {p + name: value for name, value in pre_metrics.items()}
        metrics.update({
            # kept = what the filter keeps (pre-filter denominator), in_update = what the update really runs on
            p + "samples_kept": float(sum(row_keep)),
            p + "samples_kept_frac": sum(row_keep) / max(len(row_keep), 1),
            p + "tokens_kept": float(sum(records[s].response_tokens for s in names if keep_session[s])),
            p + "samples_in_update": float(rows_in_update),
            p + "tokens_in_update": float(tokens_in_update),
            p + "samples_dropped": float(len(dropped)),
            p + "padding_samples": float(padding),
            p + "all_rejected": float(all_rejected),
            p + "placeholder_samples": float(placeholder),
            p + "weight_mean": result.metrics()["weight_mean"],
        })
        total_tokens = sum(s.response_tokens for s in sessions)
        metrics[p + "tokens_kept_frac"] = metrics[p + "tokens_kept"] / total_tokens if total_tokens > 0 else 0.0
        if settings.mini_batch_rows:
            metrics[p + "optimizer_steps_per_epoch"] = float(math.ceil(len(batch) / settings.mini_batch_rows))
        return batch, metrics
