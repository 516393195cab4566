"""minimal-rl estimators through verl's own advantage path, with hand-computed weights.

The worked example of the spec: n = 4 responses per prompt, one prompt for each number k = 0..4 of
correct responses (the first k responses of group k are the correct ones). A fresh subprocess does a
plain ``import verl`` (nothing of ours imported by hand: on verl >= 0.9 the ``verl.plugins`` entry point
must do it; on older verl ``VERL_USE_EXTERNAL_MODULES=verl_ext``, as the Hydra plugin sets it for the Ray
workers) and calls verl's legacy ``ray_trainer.compute_advantage`` and, on verl >= 0.9, the v1 trainer's
``compute_advantage_for_multi_trajectories`` with our names.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mrl_testing import HAND_WEIGHTS, K_CORRECT, NUM_GENERATIONS as N  # noqa: E402
from mrl_verl import HAS_DROP_SAMPLER, LOADS_ENTRY_POINTS, SAMPLER_REASON  # noqa: E402

from minimal_rl.table import ALGORITHMS, ESTIMATOR_NAMES  # noqa: E402

# HAND[name][k] = weights of the 4 responses of the group with k correct (correct ones first; 0 = dropped), for the
# estimators of a fixed group (Reinforce-Ada's need the rollout's pools: tests/verl_ext/test_verl_adaptive.py).
HAND = {
    name: {k: [0.0 if w is None else w for w in HAND_WEIGHTS[name][k]] for k in K_CORRECT}
    for name in ESTIMATOR_NAMES
    if not ALGORITHMS[name].adaptive
}
# The fork's trap, reachable only on purpose: raw 0/1 rewards make Reinforce-Rej positives-only.
HAND_RAW_BINARY_REJ = {0: [0, 0, 0, 0], 1: [1, 0, 0, 0], 2: [1, 1, 0, 0], 3: [1, 1, 1, 0], 4: [0, 0, 0, 0]}

# Runs in a fresh interpreter: only `import verl`, then verl's functions with our names.
PROBE = r"""
import json, sys
import numpy as np, torch
import verl  # loads the verl.plugins entry points (verl < 0.9: VERL_USE_EXTERNAL_MODULES): must register minimal-rl
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage
try:
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories
except ImportError:  # verl < 0.9: no v1 trainer
    compute_advantage_for_multi_trajectories = None

spec = json.loads(sys.argv[1])
lengths = spec["lengths"]
T = max(lengths)
out = {}
for fmt, (hi, lo) in {"signed": (1.0, -1.0), "binary": (1.0, 0.0)}.items():
    mask = torch.zeros(len(lengths), T)
    rewards = torch.zeros(len(lengths), T)
    for i, (L, c) in enumerate(zip(lengths, spec["correct"])):
        mask[i, :L] = 1
        rewards[i, L - 1] = hi if c else lo  # verl: the score sits on the last valid token
    for name, block in spec["runs"]:
        config = OmegaConf.create({"adv_estimator": name, "gamma": 1.0, "lam": 1.0, **({"minimal_rl": block} if block else {})})
        data = DataProto.from_dict(
            tensors={"token_level_rewards": rewards.clone(), "response_mask": mask.clone()},
            non_tensors={"uid": np.array(spec["uids"], dtype=object)},
        )
        legacy = compute_advantage(data, adv_estimator=name, num_repeat=4, config=config)
        out[f"{fmt}/{name}/{json.dumps(block)}/legacy"] = {
            "advantages": legacy.batch["advantages"].tolist(), "returns": legacy.batch["returns"].tolist(),
        }
        if compute_advantage_for_multi_trajectories is None:
            continue
        keys = [f"{u}_0_{i}" for i, u in enumerate(spec["uids"])]
        v1 = compute_advantage_for_multi_trajectories(
            DataProto.from_dict(
                tensors={"token_level_rewards": rewards.clone(), "response_mask": mask.clone()},
                non_tensors={"uid": np.array(spec["uids"], dtype=object)},
            ),
            batch_keys=keys, adv_estimator=name, num_repeat=4, config=config,
        )
        out[f"{fmt}/{name}/{json.dumps(block)}/v1"] = {
            "advantages": v1.batch["advantages"].tolist(), "returns": v1.batch["returns"].tolist(),
        }
print("JSON" + json.dumps(out))
"""


def worked_example(shuffle: bool = False):
    """uids, correctness and response lengths of the worked example (one group per k = 0..4)."""
    uids, correct = [], []
    for k in range(5):
        uid = f"prompt-{k}-6f1c"  # strings, like verl's uuid4 uids
        uids += [uid] * N
        correct += [True] * k + [False] * (N - k)
    lengths = [3 + (i * 5) % 7 for i in range(len(uids))]  # uneven response lengths 3..9
    order = list(range(len(uids)))
    if shuffle:  # groups need not be contiguous in the batch
        order = list(np.random.default_rng(0).permutation(len(uids)))
    return [uids[i] for i in order], [correct[i] for i in order], [lengths[i] for i in order], order


def expected_weights(table, order):
    flat = [w for k in range(5) for w in table[k]]
    return [flat[i] for i in order]


@pytest.fixture(scope="module")
def probe_results():
    uids, correct, lengths, order = worked_example(shuffle=True)
    runs = [[name, None] for name in HAND] + [["reinforce_rej", {"reward_mapping": "raw"}]]
    spec = {"uids": uids, "correct": correct, "lengths": lengths, "runs": runs}
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "auto", "OMP_NUM_THREADS": "1"}
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    if not LOADS_ENTRY_POINTS:  # what the Hydra plugin puts in the environment Ray's workers inherit
        env["VERL_USE_EXTERNAL_MODULES"] = "verl_ext"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(spec)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("JSON"))
    return json.loads(line[4:]), lengths, order


@pytest.mark.parametrize(
    "path", ["legacy", pytest.param("v1", marks=pytest.mark.skipif(not HAS_DROP_SAMPLER, reason=SAMPLER_REASON))]
)
@pytest.mark.parametrize("fmt", ["signed", "binary"])
@pytest.mark.parametrize("name", list(HAND))
def test_worked_example_through_verl(probe_results, name, fmt, path):
    results, lengths, order = probe_results
    got = results[f"{fmt}/{name}/null/{path}"]
    weights = expected_weights(HAND[name], order)
    T = max(lengths)
    expected = torch.tensor([[w if t < L else 0.0 for t in range(T)] for w, L in zip(weights, lengths)])
    torch.testing.assert_close(torch.tensor(got["advantages"]), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(got["returns"]), expected, atol=1e-6, rtol=0)


def test_options_reach_the_estimator_through_the_config(probe_results):
    """algorithm.minimal_rl.reward_mapping=raw with 0/1 scores: the fork's positives-only behaviour;
    with +-1 scores raw equals signed."""
    results, lengths, order = probe_results
    for fmt, table in (("binary", HAND_RAW_BINARY_REJ), ("signed", HAND["reinforce_rej"])):
        got = torch.tensor(results[f'{fmt}/reinforce_rej/{{"reward_mapping": "raw"}}/legacy']["advantages"])
        first_token = got[:, 0]
        torch.testing.assert_close(first_token, torch.tensor(expected_weights(table, order), dtype=torch.float32))


# ---------------------------------------------------------------------------------------------
# Bad inputs, in-process (importing verl loads the plugin here too)
# ---------------------------------------------------------------------------------------------


def _batch(scores, uids, T=5):
    scores = torch.as_tensor(scores, dtype=torch.float32)
    mask = torch.ones(len(scores), T)
    mask[:, -1] = 0  # last position is padding
    rewards = torch.zeros(len(scores), T)
    rewards[:, T - 2] = scores
    return rewards, mask, np.array(uids, dtype=object)


def _estimator(name):
    import verl  # noqa: F401

    if not LOADS_ENTRY_POINTS:
        import verl_ext  # noqa: F401  (what VERL_USE_EXTERNAL_MODULES does in verl < 0.9's processes)
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    return get_adv_estimator_fn(name)


def test_nan_and_inf_scores():
    rewards, mask, uids = _batch([float("nan"), 1.0, float("inf"), float("-inf")], ["a", "a", "b", "b"])
    adv, _ = _estimator("reinforce_rej")(rewards, mask, index=uids, config=None)
    # NaN counts as wrong (logged), +inf correct, -inf wrong: both groups are mixed.
    assert torch.isfinite(adv).all()
    torch.testing.assert_close(adv[:, 0], torch.tensor([-1.0, 1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="NaN"):
        _estimator("reinforce_rej")(rewards, mask, index=uids, config={"minimal_rl": {"nan_policy": "error"}})
    with pytest.raises(ValueError, match="finite"):
        _estimator("reinforce")(rewards, mask, index=uids, config={"minimal_rl": {"reward_mapping": "raw"}})


def test_singleton_and_uneven_groups():
    # group a: 1 response (correct), b: 3 responses (mixed), c: 2 (all wrong)
    rewards, mask, uids = _batch([1, 1, -1, -1, -1, -1], ["a", "b", "b", "b", "c", "c"])
    adv, _ = _estimator("reinforce_rej")(rewards, mask, index=uids, config=None)
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.0, 1.0, -1.0, -1.0, 0.0, 0.0]))
    adv, _ = _estimator("reinforce_mean_zero")(rewards, mask, index=uids, config=None)
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.0, 4 / 3, -2 / 3, -2 / 3, 0.0, 0.0]))
    adv, _ = _estimator("reinforce_rej_std")(rewards, mask, index=uids, config=None)
    std_b = torch.tensor([1.0, -1.0, -1.0]).std().item()  # unbiased, = 2/sqrt(3)
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.0, 1 / std_b, -1 / std_b, -1 / std_b, 0.0, 0.0]))
    assert (adv[:, -1] == 0).all()  # padding stays 0


def test_missing_uid_is_a_clear_error():
    rewards, mask, uids = _batch([1, -1], ["a", None])
    with pytest.raises(ValueError, match="no group id"):
        _estimator("reinforce_rej")(rewards, mask, index=uids, config=None)
    with pytest.raises(ValueError, match="uid"):
        _estimator("raft")(rewards, mask, config=None)  # verl passes no `index` without a uid column


def test_every_group_filtered_gives_zeros_not_nan():
    rewards, mask, uids = _batch([1, 1, -1, -1], ["a", "a", "b", "b"])
    for name in ("reinforce_rej", "reinforce_rej_std"):
        adv, ret = _estimator(name)(rewards, mask, index=uids, config=None)
        assert torch.equal(adv, torch.zeros_like(adv)) and torch.equal(ret, adv)
    adv, _ = _estimator("raft")(*_batch([-1, -1], ["a", "a"])[:2], index=np.array(["a", "a"], dtype=object), config=None)
    assert torch.equal(adv, torch.zeros_like(adv))


def test_bad_options_are_errors():
    rewards, mask, uids = _batch([1, -1], ["a", "a"])
    fn = _estimator("reinforce_rej")
    with pytest.raises(ValueError, match="unknown key"):
        fn(rewards, mask, index=uids, config={"minimal_rl": {"reward_maping": "raw"}})
    with pytest.raises(ValueError, match="filter_mode"):
        fn(rewards, mask, index=uids, config={"minimal_rl": {"filter_mode": "bogus"}})
    with pytest.raises(ValueError, match="reward_mapping"):
        fn(rewards, mask, index=uids, config={"minimal_rl": {"reward_mapping": "bogus"}})


def test_positive_threshold_option():
    rewards, mask, uids = _batch([0.9, 0.4, 0.2, 0.1], ["a", "a", "a", "a"])
    adv, _ = _estimator("reinforce")(rewards, mask, index=uids, config={"minimal_rl": {"positive_threshold": 0.3}})
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.0, 1.0, -1.0, -1.0]))


def test_algo_config_dataclass_gives_defaults():
    """verl's AlgoConfig has no minimal_rl field: an AlgoConfig object means the defaults apply."""
    from verl.trainer.config import AlgoConfig

    rewards, mask, uids = _batch([1, 0, 0, 0], ["a", "a", "a", "a"])
    adv, _ = _estimator("reinforce_rej")(rewards, mask, index=uids, config=AlgoConfig(adv_estimator="reinforce_rej"))
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.0, -1.0, -1.0, -1.0]))


def test_names_are_consistent():
    """Every name comes from the core's table: what verl has registered is exactly that list."""
    _estimator("raft")
    import verl_ext
    from hydra_plugins.minimal_rl_searchpath import registration_check
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    assert verl_ext.ESTIMATOR_NAMES == registration_check.ESTIMATOR_NAMES == ESTIMATOR_NAMES
    assert set(ESTIMATOR_NAMES) <= set(ADV_ESTIMATOR_REGISTRY) and "raft" in POLICY_LOSS_REGISTRY
    for name in ESTIMATOR_NAMES:
        fn = ADV_ESTIMATOR_REGISTRY[name]
        assert fn.__name__ == f"compute_{name}_advantage" and "(bs, T)" in fn.__doc__, name


def test_a_sample_filter_option_replaces_the_estimators_own():
    rewards, mask, uids = _batch([1, 1, 1, 1, 1, -1, -1, -1], ["a"] * 4 + ["b"] * 4)
    adv, _ = _estimator("reinforce")(rewards, mask, index=uids, config={"minimal_rl": {"sample_filter": "drop_all_correct"}})
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, -1.0, -1.0, -1.0]))
    adv, _ = _estimator("reinforce_rej")(rewards, mask, index=uids, config={"minimal_rl": {"sample_filter": "none"}})
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0]))
