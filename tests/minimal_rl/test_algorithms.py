"""Core weights and keep masks against hand-computed numbers (the spec's worked example) and edge cases."""

import logging
import math

import numpy as np
import pytest
import torch

from mrl_testing import HAND_KEEP, HAND_WEIGHTS, K_CORRECT, hand_weights, worked_example_scores, worked_example_uids

from minimal_rl.algorithms import (
    ALL_CORRECT,
    ALL_WRONG,
    FILTERS,
    MIXED,
    WEIGHTS,
    compute_weights,
    correctness,
    group_index,
    group_statistics,
    signed_rewards,
)
from minimal_rl.metrics import SHARED
from minimal_rl.table import ALGORITHMS, GROUP_DEPENDENT_WEIGHTS, SAMPLE_FILTERS, WEIGHT_EQUATIONS, get_algorithm

UIDS = np.array(worked_example_uids(), dtype=object)


def test_every_algorithm_has_an_expectation():
    assert set(HAND_WEIGHTS) == set(ALGORITHMS)


def test_the_table_names_exactly_the_functions_that_exist():
    assert set(WEIGHTS) == set(WEIGHT_EQUATIONS)
    assert set(FILTERS) == set(SAMPLE_FILTERS) == set(HAND_KEEP)


@pytest.mark.parametrize("algorithm", sorted(HAND_WEIGHTS))
@pytest.mark.parametrize("score_values", [(1.0, -1.0), (1.0, 0.0)], ids=["pm1", "01"])
def test_worked_example(algorithm, score_values):
    result = compute_weights(worked_example_scores(*score_values), algorithm, UIDS)
    weights, keep = hand_weights(algorithm)
    assert torch.equal(result.keep, keep)
    torch.testing.assert_close(result.weights, weights, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sample_filter", sorted(HAND_KEEP))
def test_every_filter_keeps_what_the_spec_says_on_top_of_any_weights(sample_filter):
    keep = torch.tensor([kept for group in HAND_KEEP[sample_filter] for kept in group])
    for algorithm, spec in ALGORITHMS.items():
        if sample_filter == "drop_wrong" and spec.weights in GROUP_DEPENDENT_WEIGHTS:
            with pytest.raises(ValueError, match="drops single responses"):
                compute_weights(worked_example_scores(), algorithm, UIDS, sample_filter=sample_filter)
            continue
        result = compute_weights(worked_example_scores(), algorithm, UIDS, sample_filter=sample_filter)
        assert torch.equal(result.keep, keep), algorithm
        unfiltered = compute_weights(worked_example_scores(), algorithm, UIDS, sample_filter="none")
        # the filter only removes samples: kept samples keep the algorithm's own weight
        torch.testing.assert_close(result.weights, torch.where(keep, unfiltered.weights, torch.zeros(20)))


def test_the_ablations_are_reinforce_with_a_filter():
    """The paper's Reinforce ablations are (reinforce weights, filter) pairs, not separate code paths."""
    for name in ("reinforce_rej", "reinforce_remove_all_wrong", "reinforce_remove_all_correct"):
        spec = ALGORITHMS[name]
        a = compute_weights(worked_example_scores(), name, UIDS)
        b = compute_weights(worked_example_scores(), "reinforce", UIDS, sample_filter=spec.sample_filter)
        assert spec.weights == ALGORITHMS["reinforce"].weights
        assert torch.equal(a.weights, b.weights) and torch.equal(a.keep, b.keep)


def test_unknown_filter_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown sample filter 'drop_all'.*drop_uniform"):
        compute_weights(worked_example_scores(), "grpo", UIDS, sample_filter="drop_all")


def test_01_scores_do_not_turn_reinforce_rej_into_positives_only():
    """The released code's trap: 0/1 scores passed through make every negative weigh 0."""
    result = compute_weights(worked_example_scores(1.0, 0.0), "reinforce_rej", UIDS)
    negatives = result.keep & ~result.correct
    assert negatives.sum() == 6
    assert torch.all(result.weights[negatives] == -1.0)


def test_raw_mapping_reproduces_the_fork_opt_in():
    result = compute_weights(worked_example_scores(1.0, 0.0), "reinforce_rej", UIDS, reward_mapping="raw")
    negatives = result.keep & ~result.correct
    assert torch.all(result.weights[negatives] == 0.0)  # exactly the fork's behaviour, opt-in only


def test_group_kinds_and_metrics():
    result = compute_weights(worked_example_scores(1.0, 0.0), "reinforce_rej", UIDS)
    assert result.stats.kind.tolist() == [ALL_WRONG, MIXED, MIXED, MIXED, ALL_CORRECT]
    assert result.stats.num_correct.tolist() == list(K_CORRECT)
    m = result.metrics(response_lengths=torch.arange(1, 21))
    assert m["groups_all_wrong"] == pytest.approx(0.2)
    assert m["groups_all_correct"] == pytest.approx(0.2)
    assert m["groups_mixed"] == pytest.approx(0.6)
    assert m["samples_kept"] == 12
    assert m["accuracy_before_filter"] == pytest.approx(0.5)  # before filtering
    assert m["score_before_filter/mean"] == pytest.approx(0.5)
    assert m["tokens_kept"] == sum(range(5, 17))
    assert m["groups_generated"] == 5.0
    assert set(m) == set(SHARED)  # the names both plugins log (`minimal_rl.metrics`)
    assert m["tokens_kept_frac"] == pytest.approx(sum(range(5, 17)) / sum(range(1, 21)))


def test_positive_threshold_is_strict():
    scores = torch.tensor([0.5, 0.5, 0.7, 0.2])
    assert correctness(scores, 0.5).tolist() == [False, False, True, False]
    assert correctness(scores).tolist() == [True, True, True, True]


def test_signed_rewards():
    assert signed_rewards(torch.tensor([True, False])).tolist() == [1.0, -1.0]


def test_group_ids_need_not_be_contiguous_and_groups_may_be_uneven():
    # group "a" has 3 responses (interleaved with "b"), "b" has 2, "c" has 1
    ids = np.array(["a", "b", "a", "b", "a", "c"], dtype=object)
    scores = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    result = compute_weights(scores, "reinforce_rej", ids)
    assert result.keep.tolist() == [True, False, True, False, True, False]
    assert result.weights.tolist() == [1.0, 0.0, -1.0, 0.0, -1.0, 0.0]
    mz = compute_weights(scores, "reinforce_mean_zero", ids)
    torch.testing.assert_close(mz.weights, torch.tensor([4 / 3, 0.0, -2 / 3, 0.0, -2 / 3, 0.0]))


def test_contiguous_fast_path_matches_general_path():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.array([f"u{i}" for i in range(50)], dtype=object), 4)
    perm = rng.permutation(ids.size)
    scores = torch.from_numpy(rng.integers(0, 2, ids.size).astype(np.float32))
    for algo in ALGORITHMS:
        a = compute_weights(scores, algo, ids)
        b = compute_weights(scores[perm], algo, ids[perm])
        torch.testing.assert_close(a.weights[perm], b.weights)
        assert torch.equal(a.keep[perm], b.keep)


def test_repeated_run_heads_fall_back_to_the_general_path():
    index, n = group_index(np.array(["a", "a", "b", "a"], dtype=object))
    assert n == 2
    assert index.tolist() == [0, 0, 1, 0]


def test_integer_and_tensor_group_ids():
    idx, n = group_index(torch.tensor([7, 7, 3, 3]))
    assert n == 2 and idx.tolist() == [0, 0, 1, 1]
    idx, n = group_index([5, 1, 5, 1])
    assert n == 2 and idx.tolist() == [1, 0, 1, 0]


def test_group_size_layout():
    scores = worked_example_scores(1.0, 0.0)
    a = compute_weights(scores, "reinforce_rej", group_size=4)
    b = compute_weights(scores, "reinforce_rej", UIDS)
    assert torch.equal(a.weights, b.weights) and torch.equal(a.keep, b.keep)
    with pytest.raises(ValueError, match="groups of 3"):
        compute_weights(scores, "reinforce_rej", group_size=3)


def test_singleton_groups_are_uniform():
    scores = torch.tensor([1.0, 0.0])
    result = compute_weights(scores, "reinforce_rej", ["a", "b"])
    assert result.stats.kind.tolist() == [ALL_CORRECT, ALL_WRONG]
    assert not result.keep.any()
    assert compute_weights(scores, "raft", ["a", "b"]).keep.tolist() == [True, False]
    std = compute_weights(scores, "reinforce_rej_std", ["a", "b"])
    assert torch.isfinite(std.weights).all()
    grpo = compute_weights(scores, "grpo", ["a", "b"])
    assert grpo.weights.tolist() == [0.0, 0.0]


def test_nan_scores_count_as_wrong_with_a_warning(caplog):
    scores = torch.tensor([1.0, float("nan"), 0.0, 1.0])
    with caplog.at_level(logging.WARNING):
        result = compute_weights(scores, "reinforce_rej", ["a", "a", "b", "b"])
    assert "NaN" in caplog.text
    assert result.correct.tolist() == [True, False, False, True]
    assert result.weights.tolist() == [1.0, -1.0, -1.0, 1.0]
    with pytest.raises(ValueError, match="NaN"):
        compute_weights(scores, "reinforce_rej", ["a", "a", "b", "b"], nan_policy="error")


def test_inf_scores():
    scores = torch.tensor([float("inf"), float("-inf")])
    result = compute_weights(scores, "reinforce_rej", ["a", "a"])
    assert result.weights.tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="finite"):
        compute_weights(scores, "reinforce_rej", ["a", "a"], reward_mapping="raw")


def test_missing_group_ids_are_an_error():
    with pytest.raises(ValueError, match="no group id"):
        compute_weights(torch.ones(3), "reinforce_rej", np.array(["a", None, "a"], dtype=object))
    with pytest.raises(ValueError, match="group_ids"):
        compute_weights(torch.ones(3), "reinforce_rej")
    with pytest.raises(ValueError, match="3 scores but 2"):
        compute_weights(torch.ones(3), "reinforce_rej", ["a", "a"])


def test_every_group_filtered_gives_zero_weights_and_finite_metrics():
    scores = torch.tensor([1.0, 1.0, 0.0, 0.0])
    result = compute_weights(scores, "reinforce_rej", ["a", "a", "b", "b"])
    assert not result.keep.any() and torch.all(result.weights == 0)
    m = result.metrics(response_lengths=torch.tensor([0, 0, 0, 0]))
    assert all(math.isfinite(v) for v in m.values())
    assert m["samples_kept"] == 0 and m["weight_mean"] == 0.0


def test_empty_batch():
    result = compute_weights(torch.zeros(0), "raft", np.array([], dtype=object))
    assert result.weights.numel() == 0
    assert all(math.isfinite(v) for v in result.metrics().values())


def test_unknown_algorithm_and_mapping_errors_name_the_choices():
    with pytest.raises(ValueError, match="reinforce_rej"):
        get_algorithm("reinforce-rejj")
    with pytest.raises(ValueError, match="signed"):
        compute_weights(torch.ones(2), "reinforce", ["a", "a"], reward_mapping="binary")


def test_losses_per_algorithm():
    assert get_algorithm("raft").loss == "nll"
    assert all(a.loss == "ppo_clip" for n, a in ALGORITHMS.items() if n != "raft")


def test_raft_loss_is_minus_weight_times_log_prob():
    from minimal_rl.algorithms import raft_loss

    log_prob = torch.tensor([[-0.5, -2.0]], requires_grad=True)
    loss = raft_loss(log_prob, torch.tensor([[1.0, 0.0]]))
    assert loss.tolist() == [[0.5, 0.0]]
    (grad,) = torch.autograd.grad(loss.sum(), log_prob)
    assert grad.tolist() == [[-1.0, 0.0]]


def test_group_statistics_direct():
    correct = torch.tensor([True, False, True, True])
    stats = group_statistics(correct, torch.tensor([0, 0, 1, 1]), 2)
    assert stats.size.tolist() == [2, 2]
    assert stats.kind.tolist() == [MIXED, ALL_CORRECT]
    assert stats.fractions() == {"all_correct": 0.5, "all_wrong": 0.0, "mixed": 0.5}


def test_raft_loss_gradient_through_the_softmax_by_hand():
    """raft_loss on log pi from logits: the value -A log p and the gradient -A (onehot - p) per row, worked
    out by hand. (RAFT++ is the host's PPO clip; at ratio 1 its gradient -A d(rho) = -A rho d(log p) is this
    same one, which is why the two coincide on the first mini-batch.)"""
    from minimal_rl.algorithms import raft_loss

    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], dtype=torch.float64, requires_grad=True)
    log_p = torch.log_softmax(logits, -1)[:, 0]  # log 0.5, log 0.75
    loss = raft_loss(log_p, torch.tensor([1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(loss, torch.tensor([math.log(2.0), math.log(0.75)], dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    # row 0: A=1, p=(0.5, 0.5): -(1-0.5, 0-0.5); row 1: A=-1, p=(0.75, 0.25): +(1-0.75, 0-0.25)
    torch.testing.assert_close(grad, torch.tensor([[-0.5, 0.5], [0.25, -0.25]], dtype=torch.float64))


def test_dropping_equals_masking_under_kept_token_normalisation():
    """raft_loss summed over kept tokens and divided by their number: dropping the rejected row and masking
    it give the same value and gradient (worked out by hand); zero-weighting it but normalising by all
    tokens dilutes both by kept / all tokens (4 / 5 here)."""
    from minimal_rl.algorithms import raft_loss

    log_prob = torch.tensor([[-1.0, -2.0], [-1.0, -1.0], [-0.5, -1.5]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)  # row 1: one padding token
    weights = torch.tensor([0.5, 0.0, -0.5], dtype=torch.float64)  # row 1 rejected (weight 0)
    keep = torch.tensor([True, False, True])
    hand_loss = (0.5 * 1.0 + 0.5 * 2.0 - 0.5 * 0.5 - 0.5 * 1.5) / 4  # = 0.125
    hand_grad = torch.tensor([[-0.125, -0.125], [0.0, 0.0], [0.125, 0.125]], dtype=torch.float64)

    dropped = (raft_loss(log_prob[keep], weights[keep, None]) * mask[keep]).sum() / mask[keep].sum()
    keep_mask = mask * keep[:, None]
    masked = (raft_loss(log_prob, weights[:, None]) * keep_mask).sum() / keep_mask.sum()
    zeroed = (raft_loss(log_prob, weights[:, None]) * mask).sum() / mask.sum()
    for loss, scale in ((dropped, 1.0), (masked, 1.0), (zeroed, 4 / 5)):
        assert loss.item() == pytest.approx(hand_loss * scale)
        (grad,) = torch.autograd.grad(loss, log_prob)
        torch.testing.assert_close(grad, hand_grad * scale)
