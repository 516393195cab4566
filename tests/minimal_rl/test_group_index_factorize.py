"""group_index on object ids (verl's uid strings): hash factorisation, same partition as np.unique,
first-appearance labels, and unchanged weights whatever the batch order."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch

from minimal_rl.algorithms import compute_weights, group_index


def _uids(groups: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = [str(uuid.UUID(int=int(rng.integers(2**62)), version=4)) for _ in range(groups)]
    return np.array([u for u in base for _ in range(n)], dtype=object)


def test_same_partition_as_numpy_unique_and_first_appearance_labels():
    ids = _uids(50, 4)[np.random.default_rng(1).permutation(200)]
    index, num_groups = group_index(ids)
    _, reference = np.unique(ids, return_inverse=True)
    assert num_groups == 50
    # same partition: labels map one-to-one onto np.unique's
    pairs = set(zip(index.tolist(), reference.tolist()))
    assert len(pairs) == 50
    # first appearance order
    firsts = [int(index[i]) for i in sorted({ids.tolist().index(u) for u in ids.tolist()})]
    assert firsts == list(range(50))


def test_contiguous_labels_match_run_order():
    index, num_groups = group_index(_uids(5, 3))
    assert index.tolist() == [g for g in range(5) for _ in range(3)] and num_groups == 5


def test_weights_do_not_depend_on_batch_order():
    ids = _uids(64, 4)
    scores = torch.from_numpy(np.random.default_rng(2).integers(0, 2, ids.size)).float()
    perm = np.random.default_rng(3).permutation(ids.size)
    for name in ("reinforce_rej", "reinforce_rej_std", "reinforce_mean_zero", "grpo", "raft"):
        contiguous = compute_weights(scores, name, group_ids=ids).weights
        shuffled = compute_weights(scores[perm], name, group_ids=ids[perm]).weights
        torch.testing.assert_close(shuffled, contiguous[perm])


@pytest.mark.parametrize("bad", [None, float("nan"), np.nan])
def test_missing_ids_raise(bad):
    ids = np.array(["a", "a", bad, "b"], dtype=object)
    with pytest.raises(ValueError, match=r"no group id \(None/NaN at positions \[2\]\)"):
        group_index(ids)


def test_unhashable_ids_raise():
    ids = np.empty(2, dtype=object)
    ids[0], ids[1] = ["a"], ["b"]
    with pytest.raises(ValueError, match="hashable"):
        group_index(ids)
