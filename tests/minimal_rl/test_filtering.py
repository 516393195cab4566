"""Filters for any reward (`minimal_rl.filtering`): uniform = zero variance, thresholds that fit the reward, and the
loud warning when a filter keeps nothing for several steps."""

from __future__ import annotations

import logging

import pytest
import torch

from mrl_testing import HAND_KEEP, worked_example_scores, worked_example_uids

from minimal_rl.algorithms import compute_weights, drop_uniform_groups, group_index, group_statistics
from minimal_rl.filtering import EmptySelectionWatch, is_binary_reward, needs_threshold, uniform_groups
from minimal_rl.table import ALGORITHMS, SAMPLE_FILTERS, check_filter_fits, get_algorithm

# Rewards users pass that are not verifiers: a reward model's scores and a length reward.
REWARD_MODEL = [[-1.6, -2.0, -4.2, -3.1], [-2.5, -2.5, -2.5, -2.5], [-1.9, -1.7, -3.3, -2.2]]
LENGTHS = [[7.0, 12.0, 3.0, 9.0], [5.0, 5.0, 5.0, 5.0], [1.0, 30.0, 2.0, 2.0]]


def flat(groups):
    return torch.tensor([s for g in groups for s in g]), [f"g{i}" for i, g in enumerate(groups) for _ in g]


def filter_pairs():
    """Every (algorithm, filter) pair the table allows."""
    for algorithm in ALGORITHMS:
        for name in SAMPLE_FILTERS:
            try:
                check_filter_fits(algorithm, name)
            except ValueError:
                continue
            yield algorithm, name


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-1.0, 1.0)])
@pytest.mark.parametrize("algorithm, sample_filter", list(filter_pairs()))
def test_binary_rewards_decide_exactly_as_before(algorithm, sample_filter, low, high):
    """On 0/1 and +-1 rewards, uniform by variance is the old all-correct / all-wrong rule, for every pair."""
    scores, uids = worked_example_scores(high, low), worked_example_uids()
    result = compute_weights(scores, algorithm, uids, sample_filter=sample_filter)
    expected = torch.tensor([keep for group in HAND_KEEP[sample_filter] for keep in group])
    assert torch.equal(result.keep, expected)
    assert result.positive_threshold == 0.0
    # the old rule, written out: uniform = kind is not mixed
    assert torch.equal(result.stats.uniform, result.stats.kind != 2)


def test_uniform_is_zero_variance_of_any_reward():
    for groups in (REWARD_MODEL, LENGTHS):
        scores, uids = flat(groups)
        index, g = group_index(uids)
        assert uniform_groups(scores, index, g).tolist() == [False, True, False]
    # NaN compares as -inf: a group of NaNs is uniform, NaN next to a number is not
    index, g = group_index(["a", "a", "b", "b", "c"])
    nan = float("nan")
    assert uniform_groups(torch.tensor([nan, nan, nan, 1.0, 0.3]), index, g).tolist() == [True, False, True]


def test_grpo_drop_uniform_keeps_the_groups_with_a_signal_for_a_length_reward():
    """The issue's case: with len(completion) as reward every response is "correct" (> 0), yet GRPO sees a
    reward std; drop_uniform must keep the groups whose lengths differ, not drop everything."""
    scores, uids = flat(LENGTHS)
    result = compute_weights(scores, "grpo", uids, sample_filter="drop_uniform")
    assert result.keep.tolist() == [True] * 4 + [False] * 4 + [True] * 4
    assert result.stats.fractions()["all_correct"] == 1.0  # the old rule would have dropped every group
    scores, uids = flat(REWARD_MODEL)
    assert compute_weights(scores, "grpo", uids, sample_filter="drop_uniform").keep.sum() == 8


@pytest.mark.parametrize("groups", [REWARD_MODEL, LENGTHS], ids=["reward_model", "length"])
@pytest.mark.parametrize("algorithm, sample_filter", [("raft", None), ("reinforce_rej", None), ("grpo", "drop_all_correct"),
                                                      ("grpo", "drop_all_wrong"), ("reinforce", None)])
def test_a_non_binary_reward_needs_an_explicit_threshold(groups, algorithm, sample_filter):
    scores, uids = flat(groups)
    with pytest.raises(ValueError, match=r"not binary \(this batch: .* … .*\).*positive_threshold"):
        compute_weights(scores, algorithm, uids, sample_filter=sample_filter)
    threshold = -2.4 if groups is REWARD_MODEL else 6.0
    result = compute_weights(scores, algorithm, uids, sample_filter=sample_filter, positive_threshold=threshold)
    assert result.positive_threshold == threshold
    assert torch.equal(result.correct, scores > threshold)


def test_raft_with_a_threshold_that_fits_the_reward_model():
    scores, uids = flat(REWARD_MODEL)
    result = compute_weights(scores, "raft", uids, positive_threshold=-2.1)
    assert result.keep.tolist() == [True, True, False, False, False, False, False, False, True, True, False, False]
    assert result.weights[result.keep].eq(1).all()


@pytest.mark.parametrize("algorithm, sample_filter, mapping", [("grpo", "drop_uniform", "signed"), ("grpo", "none", "signed"),
                                                               ("raft", "none", "signed"), ("reinforce_rej", None, "raw"),
                                                               ("reinforce_mean_zero", "none", "raw")])
def test_decisions_that_do_not_use_correctness_need_no_threshold(algorithm, sample_filter, mapping):
    spec = get_algorithm(algorithm)
    assert not needs_threshold(spec, sample_filter or spec.sample_filter, mapping)
    scores, uids = flat(LENGTHS)
    compute_weights(scores, algorithm, uids, sample_filter=sample_filter, reward_mapping=mapping)


def test_raw_mapping_judges_uniform_on_the_raw_reward():
    """reinforce_rej with reward_mapping='raw' weighs the raw reward: a group of different lengths has a signal."""
    scores, uids = flat(LENGTHS)
    result = compute_weights(scores, "reinforce_rej", uids, reward_mapping="raw")
    assert result.keep.tolist() == [True] * 4 + [False] * 4 + [True] * 4
    torch.testing.assert_close(result.weights[:4], scores[:4])


def test_binary_detection():
    assert is_binary_reward(torch.tensor([0.0, 1.0, 1.0])) and is_binary_reward(torch.tensor([-1.0, 1.0]))
    assert is_binary_reward(torch.tensor([1.0, float("nan")])) and is_binary_reward(torch.tensor([0.0]))
    assert not is_binary_reward(torch.tensor([-1.0, 0.0, 1.0])) and not is_binary_reward(torch.tensor([0.0, 0.5]))


def test_drop_uniform_uses_the_uniform_mask_of_the_statistics():
    correct = torch.tensor([True, True, False, False])
    index = torch.tensor([0, 0, 1, 1])
    stats = group_statistics(correct, index, 2, uniform=torch.tensor([False, True]))
    assert drop_uniform_groups(correct, stats).tolist() == [True, True, False, False]


def test_empty_selection_is_said_loudly_with_the_reward_range(caplog):
    watch = EmptySelectionWatch(patience=3)
    scores = torch.tensor([-1.6, -4.2, -2.0])
    with caplog.at_level(logging.WARNING, logger="minimal_rl.filtering"):
        messages = [watch.observe(0, scores - step, "drop_wrong", 0.0, "trl") for step in range(12)]
    due = [i + 1 for i, m in enumerate(messages) if m]
    assert due == [3, 6, 12]  # then at 24, 48, ... steps: loud, but not every step
    assert "kept NO sample for 3 steps in a row" in messages[2] and "-6.2 … -1.6" in messages[2]
    assert "positive_threshold=0" in messages[2] and "(trl)" in messages[2]
    assert sum("kept NO sample" in r.getMessage() for r in caplog.records) == 3
    assert watch.observe(1, scores, "drop_wrong", 0.0, "trl") is None and watch.streak == 0
    assert [watch.observe(0, scores, "drop_wrong", 0.0, "trl") for _ in range(2)] == [None, None]


def test_a_given_threshold_keeps_the_papers_meaning_of_uniform():
    """With a threshold, the Reinforce rows' uniform is all correct / all wrong (paper Sec. 4), whatever the
    spread of the raw rewards; GRPO's stays zero variance of the raw reward."""
    scores, uids = flat(REWARD_MODEL)
    rej = compute_weights(scores, "reinforce_rej", uids, positive_threshold=-1.0, reward_mapping="raw")
    assert not rej.keep.any()  # every response is wrong at -1.0, though rewards differ within groups
    grpo = compute_weights(scores, "grpo", uids, sample_filter="drop_uniform", positive_threshold=-1.0)
    assert grpo.keep.tolist() == [True] * 4 + [False] * 4 + [True] * 4
