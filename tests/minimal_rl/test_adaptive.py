"""Reinforce-Ada's rules (`minimal_rl.adaptive`, arXiv 2510.04996): hand-computed pools, and the whole loop against a
straightforward re-implementation written from the spec (ALGORITHMS.md, "Beyond the paper: adaptive sampling")."""

from __future__ import annotations

import random

import pytest
import torch

from mrl_testing import hand_weights, worked_example_scores, worked_example_uids

from minimal_rl.adaptive import (
    has_signal,
    keep_after_last_round,
    keep_on_exit,
    pool_baseline,
    run_rounds,
)
from minimal_rl.algorithms import compute_weights
from minimal_rl.table import ALGORITHMS, EXIT_RULES

T, F = True, False

# --------------------------------------------------------------------------------------------
# One rule at a time, on pools computed by hand (n = 4)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "correct, wrong, balanced, positive",
    [(0, 8, F, F), (1, 7, F, T), (2, 1, F, T), (2, 2, T, T), (3, 5, T, T), (8, 0, F, T), (0, 0, F, F)],
)
def test_exit_rules(correct, wrong, balanced, positive):
    assert has_signal(correct, wrong, 4, "balanced") is balanced
    assert has_signal(correct, wrong, 4, "positive_focused") is positive


def test_exit_rule_with_an_odd_n():
    # n = 5: n//2 = 2 correct and n - n//2 = 3 wrong
    assert has_signal(2, 3, 5, "balanced") and not has_signal(3, 2, 5, "balanced")


def test_keep_on_exit_takes_half_and_half_first_come():
    pool = [F, T, F, F, T, T, F, T]  # positions of correct: 1, 4, 5, 7; wrong: 0, 2, 3, 6
    assert keep_on_exit(pool, 4) == [0, 1, 2, 4]
    # one correct only: the correct share is topped up with wrong ones
    assert keep_on_exit([F, F, T, F, F, F, F, F], 4) == [0, 1, 2, 3]
    # one wrong only: topped up with correct ones
    assert keep_on_exit([T, T, T, T, T, F, T, T], 4) == [0, 1, 2, 5]
    # a pool smaller than n keeps everything
    assert keep_on_exit([T, F, T], 4) == [0, 1, 2]


def test_fallback_balanced_is_the_half_half_rule():
    pool = [F] * 7 + [T]
    assert keep_after_last_round(pool, 4, "balanced") == [0, 1, 2, 7]
    assert keep_after_last_round([F] * 8, 4, "balanced") == [0, 1, 2, 3]  # uniform: one kind only


def test_fallback_positive_focused_follows_the_pools_ratio():
    # 6 correct of 8: round(4 * 6/8) = 3 correct, 1 wrong
    pool = [T, F, T, T, F, T, T, T]
    assert keep_after_last_round(pool, 4, "positive_focused") == [0, 1, 2, 3]
    # 1 correct of 16: round(0.25) = 0, raised to at least one of each kind
    pool = [F] * 9 + [T] + [F] * 6
    assert keep_after_last_round(pool, 4, "positive_focused") == [0, 1, 2, 9]
    # 15 correct of 16: round(3.75) = 4, lowered to leave one wrong
    pool = [T] * 5 + [F] + [T] * 10
    assert keep_after_last_round(pool, 4, "positive_focused") == [0, 1, 2, 5]
    # half up: 3 correct of 8 -> 1.5 -> 2
    assert keep_after_last_round([F, F, F, T, F, T, F, T], 4, "positive_focused") == [0, 1, 3, 5]
    assert keep_after_last_round([F] * 8, 4, "positive_focused") == [0, 1, 2, 3]


def test_pool_baseline_by_hand():
    pool = [1, 0, 0, 0, 0, 0, 0, 1]  # mean 0.25, unbiased std sqrt(3/14)
    kept = [1, 0, 0, 1]
    torch.testing.assert_close(pool_baseline(kept, pool), torch.tensor([0.75, -0.25, -0.25, 0.75]))
    std = (3 / 14) ** 0.5
    torch.testing.assert_close(
        pool_baseline(kept, pool, normalize_by_std=True), torch.tensor([0.75, -0.25, -0.25, 0.75]) / std
    )
    # a pool of one: mean 0, std 1
    torch.testing.assert_close(pool_baseline([1.0], [1.0], normalize_by_std=True), torch.tensor([1.0]))
    # a uniform pool: std clamped at eps, advantages 0
    torch.testing.assert_close(pool_baseline([1, 1], [1, 1, 1], normalize_by_std=True), torch.tensor([0.0, 0.0]))
    with pytest.raises(ValueError):
        pool_baseline([1.0], [])


def test_bad_arguments():
    with pytest.raises(ValueError, match="exit_rule"):
        has_signal(1, 1, 4, "both")
    with pytest.raises(ValueError, match="n must be"):
        keep_on_exit([T, F], 0)
    with pytest.raises(ValueError, match="max_rounds"):
        run_rounds(lambda a, r: [], 1, 4, "balanced", max_rounds=0)


# --------------------------------------------------------------------------------------------
# The table rows on a fixed group (pool = group)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reinforce_ada_balance", "reinforce_ada_pos"])
@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-1.0, 1.0)])
def test_table_rows_weigh_on_the_0_1_scale_and_drop_uniform_pools(name, low, high):
    spec = ALGORITHMS[name]
    assert spec.adaptive and spec.exit_rule in EXIT_RULES and spec.sample_filter == "drop_uniform"
    result = compute_weights(worked_example_scores(high, low), name, worked_example_uids())
    weights, keep = hand_weights(name)
    torch.testing.assert_close(result.weights, weights)
    assert torch.equal(result.keep, keep)


# --------------------------------------------------------------------------------------------
# The loop against a re-implementation of the released function, written from the spec
# --------------------------------------------------------------------------------------------


def reference_adaptive(outcomes, n, exit_rule, max_rounds, round_repeat):
    """Spec, step by step: rounds over the active prompts; exit when the pool has n//2 correct and n - n//2 wrong
    (balanced) or one correct (positive_focused), keeping n//2 correct + the rest wrong, first come, topped up from
    the other kind; after the last round keep min(n, pool) with the exit rule's split (positive_focused: the pool's
    ratio rounded half up, at least one of each kind where both exist). Returns, per prompt, (pool, kept positions,
    exit round or None), and the active prompts per round."""
    pools = {p: [] for p in range(len(outcomes))}
    exit_round = {p: None for p in pools}
    kept = {}
    active = list(pools)
    active_counts = []
    for rnd in range(max_rounds):
        if not active:
            break
        active_counts.append(len(active))
        next_active = []
        for p in active:
            pools[p] += outcomes[p][rnd * round_repeat:(rnd + 1) * round_repeat]
            pos = [i for i, c in enumerate(pools[p]) if c]
            neg = [i for i, c in enumerate(pools[p]) if not c]
            done = (len(pos) >= n // 2 and len(neg) >= n - n // 2) if exit_rule == "balanced" else len(pos) >= 1
            if not done:
                next_active.append(p)
                continue
            exit_round[p] = rnd + 1
            kept[p] = split(pos, neg, min(n, len(pools[p])), min(n, len(pools[p])) // 2)
        active = next_active
    for p in active:
        pos = [i for i, c in enumerate(pools[p]) if c]
        neg = [i for i, c in enumerate(pools[p]) if not c]
        m = min(n, len(pools[p]))
        if exit_rule == "balanced":
            want = m // 2
        else:
            want = int(m * len(pos) / len(pools[p]) + 0.5)
            if pos and neg:
                want = max(1, min(m - 1, want))
        kept[p] = split(pos, neg, m, want)
    return [(pools[p], kept[p], exit_round[p]) for p in sorted(pools)], active_counts


def split(pos, neg, m, want_pos):
    n_pos = min(want_pos, len(pos))
    n_neg = min(m - want_pos, len(neg))
    while n_pos + n_neg < m:  # top up from whichever kind has more left
        if n_pos < len(pos):
            n_pos += 1
        else:
            n_neg += 1
    return sorted(pos[:n_pos] + neg[:n_neg])


@pytest.mark.parametrize("exit_rule", list(EXIT_RULES))
@pytest.mark.parametrize("seed", range(6))
def test_run_rounds_matches_the_reference(exit_rule, seed):
    rng = random.Random(seed)
    n, max_rounds, round_repeat = rng.choice([2, 4, 5]), rng.choice([1, 3, 4]), rng.choice([2, 4, 8])
    # prompts from hopeless to trivial: accuracy 0, 0.02 ... 1
    accuracies = [0.0, 1.0] + [rng.choice([0.02, 0.1, 0.3, 0.5, 0.9, 0.98]) for _ in range(30)]
    outcomes = [[rng.random() < a for _ in range(max_rounds * round_repeat)] for a in accuracies]

    calls = []

    def sample_round(active, repeat):
        calls.append(list(active))
        start = (len(calls) - 1) * repeat
        return [outcomes[p][start:start + repeat] for p in active]

    got = run_rounds(sample_round, len(outcomes), n, exit_rule, max_rounds=max_rounds, round_repeat=round_repeat)
    expected, active_counts = reference_adaptive(outcomes, n, exit_rule, max_rounds, round_repeat)
    assert [(p.correct, p.kept, p.exit_round) for p in got.pools] == expected
    assert got.active_per_round == active_counts == [len(c) for c in calls]
    metrics = got.metrics()
    assert metrics["rounds"] == len(active_counts)
    assert metrics["exited_with_signal_frac"] == sum(e is not None for _, _, e in expected) / len(expected)
    assert metrics["uniform_pools_frac"] == sum(len(set(pool)) < 2 for pool, _, _ in expected) / len(expected)
    generated = sum(len(pool) for pool, _, _ in expected)
    kept = sum(len(k) for pool, k, _ in expected if len(set(pool)) == 2)
    assert metrics["generated_per_kept"] == pytest.approx(generated / kept)
    assert metrics["active_prompts/round_1"] == len(outcomes)


def test_run_rounds_by_hand():
    """Two prompts, n = 4, 4 responses a round: A is mixed at once; B needs a second round (balanced)."""
    rounds = {0: [[T, F, F, T], [F, F, F, F]], 1: [[T, T, F, F]]}
    seen = []

    def sample_round(active, repeat):
        seen.append(active)
        return rounds[len(seen) - 1]

    out = run_rounds(sample_round, 2, 4, "balanced", max_rounds=3, round_repeat=4)
    assert seen == [[0, 1], [1]]
    assert (out.pools[0].exit_round, out.pools[0].kept) == (1, [0, 1, 2, 3])
    assert (out.pools[1].exit_round, out.pools[1].kept) == (2, [0, 1, 4, 5])
    assert out.metrics() == {
        "rounds": 2.0, "generated_per_kept": 12 / 8, "exited_with_signal_frac": 1.0, "uniform_pools_frac": 0.0,
        "active_prompts/round_1": 2.0, "active_prompts/round_2": 1.0,
    }
    # the pool baseline of B: its 8 responses hold 2 correct, the kept 4 hold 2
    torch.testing.assert_close(pool_baseline([0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 0, 0]),
                               torch.tensor([-0.25, -0.25, 0.75, 0.75]))
