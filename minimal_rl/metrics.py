"""The metric names minimal-rl logs, written once for verl and TRL (standard library only).

Both plugins log ``PREFIX + name`` (`metric_key`) for the names below, one value per sampled batch. Where a host
combines several batches into one logged value it must take their mean: TRL averages its ``_metrics`` lists, and
verl (v1 ``MetricsAggregator`` with ``parameter_sync_step > 1``, ``reduce_metrics``, the fully-async
aggregator) picks max / min / sum by SUBSTRING of the name ("max", "min", "sum", "total", "timing_s/", an "_lr"
ending, ...), the mean otherwise. So no prefix or name here may contain such a substring: the project's own
name does ("minimal"), which is why the prefix is ``sample_filter/`` (``minimal_rl/`` before 0.3.0, reduced with
``min``). `tests/verl_ext/test_metric_names.py` runs verl's own reducers over every name.
"""

from __future__ import annotations

import re

PREFIX = "sample_filter/"

# Logged by both plugins: `minimal_rl.algorithms.WeightResult.metrics`, measured over everything generated.
SHARED = {
    "groups_all_correct": "fraction of groups (prompts) whose responses are all correct, before filtering",
    "groups_all_wrong": "fraction of groups whose responses are all wrong, before filtering",
    "groups_mixed": "fraction of groups with correct and wrong responses, before filtering",
    "groups_generated": "number of groups generated for the batch",
    "accuracy_before_filter": "fraction of correct responses, before filtering",
    "score_before_filter/mean": "mean score, before filtering (the host's own score metric sees kept rows only)",
    "samples_kept": "responses the sample filter keeps",
    "samples_kept_frac": "samples_kept / responses generated",
    "tokens_kept": "response tokens of the kept responses",
    "tokens_kept_frac": "tokens_kept / response tokens generated",
    "weight_mean": "mean weight (advantage) of the kept responses",
}

# Logged by the verl sampler only (`verl_ext.sampler`, `verl_ext.refill`).
VERL_ONLY = {
    "samples_in_update": "rows passed on to verl's update, before padding",
    "tokens_in_update": "response tokens of those rows",
    "samples_dropped": "rows removed from the batch (0 in zero mode)",
    "padding_samples": "2-token padding rows the sampler added to reach verl's row multiple",
    "optimizer_steps_per_epoch": "PPO mini-batches of the update: optimizer steps per PPO epoch",
    "all_rejected": "1 when the filter rejected every response (the update runs on a zero-weight placeholder)",
    "placeholder_samples": "rows of that placeholder",
    "unavailable": "1 when no rewards existed at sampling time (nothing dropped)",
}

# Logged by both plugins when rejected groups are refilled with new prompts (verl `filter_mode=refill`,
# `verl_ext.refill`; TRL `refill=True`, `trl_ext.refill`), one value per step.
REFILL = {
    "refill_calls": "refill rounds: times new prompts were sampled to replace rejected groups",
    "refill_prompts": "prompts those rounds added",
    "refill_batches": "refill_prompts / batch size, the quantity max_refill_batches caps",
}

# Logged by the TRL trainers only, with hard_drop=True.
TRL_ONLY = {
    "rows_per_rank": "rows each rank trains on after the kept rows are re-dealt",
    "filler_rows": "zero-loss filler rows over all ranks",
}

# Logged for Reinforce-Ada's adaptive sampling (`minimal_rl.adaptive.AdaptiveRounds.metrics`), by the TRL trainers
# and the verl sampler (`verl_ext.adaptive.PoolBook.read_batch`).
ADAPTIVE = {
    "rounds": "sampling rounds the batch used (1 to max_rounds)",
    "active_prompts/round_{k}": "prompts still being sampled in round k (one name per round run: round_1, round_2, ...)",
    "generated_per_kept": "responses generated / responses kept for the update (uniform pools keep none)",
    "exited_with_signal_frac": "fraction of prompts whose pool met the exit rule within max_rounds",
    "uniform_pools_frac": "fraction of prompts whose whole pool is one kind (no signal: drop_uniform drops them)",
}
PER_ROUND = re.compile(r"active_prompts/round_[1-9][0-9]*")  # the names "active_prompts/round_{k}" stands for

METRICS = {**SHARED, **VERL_ONLY, **REFILL, **TRL_ONLY, **ADAPTIVE}
HOST_NAMES = {
    "verl": frozenset({*SHARED, *VERL_ONLY, *REFILL, *ADAPTIVE}),
    "trl": frozenset({*SHARED, *REFILL, *TRL_ONLY, *ADAPTIVE}),
}


def metric_key(name: str) -> str:
    """The logged key of one metric name, e.g. ``sample_filter/samples_kept``."""
    if name not in METRICS and not PER_ROUND.fullmatch(name):
        raise KeyError(f"unknown minimal-rl metric {name!r}; choose one of: {', '.join(METRICS)}")
    return PREFIX + name
