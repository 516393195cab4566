"""Every minimal-rl metric survives verl's own reducers: merged over iterations, a mean stays a mean.

verl picks max / min / sum by substring of a metric's name wherever it merges iterations (the v1 trainer's
`MetricsAggregator` with ``parameter_sync_step > 1``, the fully-async one, `reduce_metrics`); every old
``minimal_rl/*`` name contains "min". These tests run the installed verl's functions themselves over every name
of `minimal_rl.metrics`, each logged for several iterations with values whose mean, weighted mean, min, max,
sum and last all differ. Every minimal-rl metric is a per-batch value whose right reduction is the mean.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("verl")

from verl.utils.metric import reduce_metrics  # noqa: E402

from minimal_rl.metrics import HOST_NAMES, METRICS, PREFIX, metric_key  # noqa: E402

KEYS = [metric_key(name) for name in METRICS]
VALUES = [4.0, 1.0, 9.0, 2.0]  # mean 4, min 1, max 9, sum 16, last 2
SAMPLE_COUNTS = [8, 2, 4, 6]  # verl v1's per-iteration weights: weighted mean 4.1
MEAN = float(np.mean(VALUES))
WEIGHTED_MEAN = float(np.average(VALUES, weights=SAMPLE_COUNTS))


def per_iteration(offset: float = 0.0) -> list[dict[str, float]]:
    """One metrics dict per iteration; each key's values are shifted by its index, so no two keys agree."""
    return [{key: value + i * offset for i, key in enumerate(KEYS)} for value in VALUES]


def test_the_vocabulary_is_what_the_names_say():
    assert PREFIX == "sample_filter/" and len(KEYS) == len(set(KEYS)) == len(METRICS)
    assert HOST_NAMES["verl"] | HOST_NAMES["trl"] == set(METRICS)
    with pytest.raises(KeyError, match="unknown minimal-rl metric 'mini_batches'"):
        metric_key("mini_batches")


def test_reduce_metrics_averages_every_name():
    reduced = reduce_metrics({key: [m[key] for m in per_iteration(0.5)] for key in KEYS})
    for i, key in enumerate(KEYS):
        assert reduced[key] == pytest.approx(MEAN + i * 0.5), key


def test_v1_metrics_aggregator_averages_every_name():
    pytest.importorskip("verl.trainer.ppo.v1", reason="the v1 trainer (and the dropping sampler) need verl >= 0.9")
    from verl.trainer.ppo.v1.utils import MetricsAggregator

    weighted = MetricsAggregator()
    plain = MetricsAggregator()
    for metrics, count in zip(per_iteration(0.5), SAMPLE_COUNTS, strict=True):
        weighted.add_step_metrics(metrics, sample_count=count)  # as verl's step(): rows of each iteration
        plain.add_step_metrics(metrics, sample_count=5)
    weighted, plain = weighted.get_aggregated_metrics(), plain.get_aggregated_metrics()
    for i, key in enumerate(KEYS):
        # v1's mean is weighted by each iteration's sample count; with equal counts it is the plain mean.
        assert weighted[key] == pytest.approx(WEIGHTED_MEAN + i * 0.5), key
        assert plain[key] == pytest.approx(MEAN + i * 0.5), key


def test_fully_async_metrics_aggregator_averages_every_name():
    detach_utils = pytest.importorskip("verl.experimental.fully_async_policy.detach_utils")
    aggregator = detach_utils.MetricsAggregator(total_gpus=1)
    for metrics, count in zip(per_iteration(0.5), SAMPLE_COUNTS, strict=True):
        aggregator.add_step_metrics(metrics, sample_count=count)
    aggregated = aggregator.get_aggregated_metrics()
    for i, key in enumerate(KEYS):
        assert aggregated[key] == pytest.approx(MEAN + i * 0.5), key


def test_the_old_prefix_was_reduced_with_min():
    """Why the names changed: the same values under ``minimal_rl/`` come out as their minimum."""
    old = "minimal_rl/samples_kept"
    assert reduce_metrics({old: list(VALUES)})[old] == min(VALUES)
    pytest.importorskip("verl.trainer.ppo.v1", reason="the v1 trainer needs verl >= 0.9")
    from verl.trainer.ppo.v1.utils import MetricsAggregator

    aggregator = MetricsAggregator()
    for value, count in zip(VALUES, SAMPLE_COUNTS, strict=True):
        aggregator.add_step_metrics({old: value}, sample_count=count)
    assert aggregator.get_aggregated_metrics()[old] == min(VALUES)
