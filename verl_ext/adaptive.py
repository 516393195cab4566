"""Reinforce-Ada on verl (``+minimal_rl=reinforce_ada_balance`` / ``reinforce_ada_pos``): the settings, the config
check, and the trainer side. Spec: ``ALGORITHMS.md``, "Beyond the paper: adaptive sampling"; rules:
`minimal_rl.adaptive`.

Three processes take part, and verl has no public carrier between them (docs/verl-adaptive.md):

1. the rollout side, `verl_ext.adaptive_rollout` (EXPERIMENTAL, private verl API): each prompt is sampled in
   rounds inside verl's agent-loop worker until its pool meets the exit rule; only the n kept responses are written
   to TransferQueue, renumbered as sessions 0..n-1, each carrying its prompt's whole pool as the `POOL_FIELD`
   field (JSON: correctness, reward values, exit round, kept positions);
2. the minimal-rl sampler (`verl_ext.sampler`, trainer process) reads that field for the sampled batch
   (`PoolBook.read_batch`): it logs the rounds metrics (`minimal_rl.adaptive.AdaptiveRounds.metrics`, the TRL
   trainers' names) and records each prompt's pool values by uid, before the filter drops uniform pools;
3. the ``reinforce_ada_*`` estimators (`verl_ext.estimators`, same process, right after) take each kept
   response's advantage from its prompt's pool there: A_i = v_i - mean(pool) (`minimal_rl.adaptive.pool_baseline`).

The sync v1 trainer only: in the async trainers the weights would change while a prompt's rounds run.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from typing import Any

import torch

from minimal_rl.adaptive import AdaptiveRounds, PromptPool, pool_baseline, response_values
from minimal_rl.algorithms import WeightResult
from minimal_rl.table import get_algorithm, is_adaptive

from .options import CONFIG_KEY, MinimalRLOptions, read_options, sample_filter_in_effect
from .private_api import check_tested_verl

PADDING_UID_PREFIX = "mrlpad"  # the uid of verl_ext.selection's padding rows (loss mask 0); verl's uids are uuid4s

POOL_FIELD = "minimal_rl_pool"  # the TransferQueue field of a kept row: its prompt's pool, as JSON
MANAGER_CLASS = "verl_ext.adaptive_rollout.AdaptiveAgentLoopManager"  # rollout.agent.agent_loop_manager_class
FEATURE = "Reinforce-Ada on verl (adaptive multi-round sampling in the agent-loop worker)"


def response_values_of(scores: torch.Tensor, estimator: str, options: MinimalRLOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """`minimal_rl.adaptive.response_values` under the run's ``algorithm.minimal_rl`` options: the worker and the
    estimator both use this, so a pool and its kept rows are on one scale."""
    _, sample_filter = sample_filter_in_effect(estimator, options)
    return response_values(scores, get_algorithm(estimator), sample_filter, options.positive_threshold,
                           options.reward_mapping, options.nan_policy)


@dataclass(frozen=True)
class AdaptiveSettings:
    """What the rounds need, read once from the composed verl config."""

    algorithm: str
    exit_rule: str
    n: int  # responses kept per prompt (actor_rollout_ref.rollout.n)
    options: MinimalRLOptions

    @classmethod
    def from_config(cls, config: Any) -> AdaptiveSettings:
        estimator = str(config.algorithm.adv_estimator).lower()
        if not is_adaptive(estimator):
            raise ValueError(
                f"{MANAGER_CLASS} samples adaptively for reinforce_ada_balance / reinforce_ada_pos only; "
                f"algorithm.adv_estimator={estimator!r}"
            )
        spec = get_algorithm(estimator)
        return cls(estimator, spec.exit_rule, int(config.actor_rollout_ref.rollout.n), read_options(config.algorithm))

    def pool_values(self, scores: list[float]) -> tuple[list[bool], list[float]]:
        """`response_values_of` one round's scores, as lists."""
        correct, values = response_values_of(torch.tensor(scores, dtype=torch.float32), self.algorithm, self.options)
        return [bool(c) for c in correct], [float(v) for v in values]


def check_adaptive_config(config: Any, verl_version: str | None = None) -> None:
    """Refuse, before any rollout, a composed config the adaptive rollout cannot run as specified."""
    algorithm = config.get("algorithm") or {}
    if not is_adaptive(algorithm.get("adv_estimator")):
        return
    check_tested_verl(FEATURE, "Use a tested verl, or reinforce_rej (uniform groups dropped) on this one.", verl_version)
    trainer = config.get("trainer") or {}
    rollout = (config.get("actor_rollout_ref") or {}).get("rollout") or {}
    options = read_options(algorithm)
    problems = []
    if not trainer.get("use_v1", True):
        problems.append("trainer.use_v1=true (the legacy trainer has no agent-loop manager hook)")
    mode = ((trainer.get("v1") or {}).get("trainer_mode")) or "sync"
    if mode != "sync":
        problems.append(f"trainer.v1.trainer_mode=sync, not {mode!r} (one pool would mix policy versions)")
    manager = (rollout.get("agent") or {}).get("agent_loop_manager_class")
    if manager != MANAGER_CLASS:
        problems.append(f"actor_rollout_ref.rollout.agent.agent_loop_manager_class={MANAGER_CLASS} (got {manager!r})")
    if options.filter_mode != "drop":
        problems.append(f"algorithm.{CONFIG_KEY}.filter_mode=drop (got {options.filter_mode!r})")
    n = int(rollout.get("n") or 1)
    if options.round_repeat < n:
        problems.append(
            f"algorithm.{CONFIG_KEY}.round_repeat >= actor_rollout_ref.rollout.n ({options.round_repeat} < {n}): "
            "every pool must be able to keep n responses"
        )
    if problems:
        raise ValueError(
            f"{algorithm.get('adv_estimator')} on verl needs " + "; ".join(problems)
            + f" (the +minimal_rl={algorithm.get('adv_estimator')} preset sets them)"
        )


def pool_record(pool: PromptPool, values: list[float], rounds_run: int) -> str:
    """The `POOL_FIELD` value of a prompt's kept rows."""
    return json.dumps({"correct": pool.correct, "values": values, "exit_round": pool.exit_round,
                       "kept": pool.kept, "rounds": rounds_run})


class PoolBook:
    """Trainer process: each prompt's pool values by uid, from the sampler to the estimator of the same step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, list[float]] = {}

    def read_batch(self, uids: list[str], records: list[str | None]) -> dict[str, float]:
        """Record the pools of one sampled batch (one entry per row; None for padding rows) and return the rounds
        metrics (names of `minimal_rl.metrics.ADAPTIVE`) over its prompts."""
        pools: dict[str, dict] = {}
        for uid, record in zip(uids, records, strict=True):
            if record is not None and uid not in pools:
                pools[uid] = json.loads(record)
        with self._lock:
            self._values = {uid: pool["values"] for uid, pool in pools.items()}
        if not pools:
            return {}
        prompt_pools = [PromptPool(p["correct"], p["exit_round"], p["kept"]) for p in pools.values()]
        rounds = max(p["rounds"] for p in pools.values())
        active = [sum(p["rounds"] >= k for p in pools.values()) for k in range(1, rounds + 1)]
        return AdaptiveRounds(prompt_pools, active).metrics()

    def advantages(self, values: torch.Tensor, index: Any) -> torch.Tensor:
        """A_i = v_i - mean(pool of i's prompt) for every row (`pool_baseline`), 0 for the sampler's padding rows
        (loss mask 0); raises for any other uid without a pool."""
        with self._lock:
            book = dict(self._values)
        uids = [str(u) for u in index]
        missing = sorted({u for u in uids if u not in book and not u.startswith(PADDING_UID_PREFIX)})
        if missing:
            raise RuntimeError(
                f"no Reinforce-Ada pool for {len(missing)} prompt(s) of this batch (e.g. {missing[0]!r}): the "
                f"reinforce_ada_* estimators need actor_rollout_ref.rollout.agent.agent_loop_manager_class="
                f"{MANAGER_CLASS} and the minimal-rl sampler, which the +minimal_rl=reinforce_ada_* presets set"
            )
        advantages = torch.zeros(len(uids), dtype=torch.float32)
        rows_of: dict[str, list[int]] = {}
        for row, uid in enumerate(uids):
            rows_of.setdefault(uid, []).append(row)
        for uid, rows in rows_of.items():
            if uid in book:
                advantages[rows] = pool_baseline(values[rows], torch.tensor(book[uid]))
        return advantages


POOLS = PoolBook()


def with_pool_weights(result: WeightResult, uids: Any, options: MinimalRLOptions, estimator: str) -> WeightResult:
    """`compute_weights`' result with the ``reinforce_ada_*`` weights: the pool baseline for the rows the filter
    keeps, 0 elsewhere (the estimator's and the sampler's ``weight_mean``); other estimators' result unchanged."""
    if not is_adaptive(estimator):
        return result
    _, values = response_values_of(result.scores.float().cpu(), estimator, options)
    advantages = POOLS.advantages(values, uids)
    weights = torch.where(result.keep.cpu(), advantages, torch.zeros_like(advantages))
    return dataclasses.replace(result, weights=weights.to(result.weights.dtype))
