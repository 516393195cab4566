"""verl_ext with rewards that are not verifiers (a reward model's scores, a length reward), the loud warning when a
filter keeps nothing, and Reinforce-Ada's rows as presets on the tested verl only (docs/verl-adaptive.md)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

pytest.importorskip("verl")

import verl_ext  # noqa: E402,F401  (registers the estimators in this process: verl < 0.9 loads no entry points)
from minimal_rl.table import ALGORITHMS, ESTIMATOR_NAMES, preset_names  # noqa: E402

REWARD_MODEL = [-1.6, -2.0, -4.2, -3.1, -2.5, -2.5, -2.5, -2.5, -1.9, -1.7, -3.3, -2.2]
LENGTHS = [7.0, 12.0, 3.0, 9.0, 5.0, 5.0, 5.0, 5.0, 1.0, 30.0, 2.0, 2.0]
UIDS = np.array([f"u{i // 4}" for i in range(12)], dtype=object)
ADAPTIVE = [name for name, spec in ALGORITHMS.items() if spec.adaptive]


def _batch(scores, T=4):
    scores = torch.as_tensor(scores, dtype=torch.float32)
    mask = torch.ones(len(scores), T)
    rewards = torch.zeros(len(scores), T)
    rewards[:, -1] = scores  # verl: the score on the last valid token
    return rewards, mask


def _estimator(name):
    import verl  # noqa: F401  (loads the plugin)
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    return get_adv_estimator_fn(name)


@pytest.mark.parametrize("scores", [REWARD_MODEL, LENGTHS], ids=["reward_model", "length"])
@pytest.mark.parametrize("name", ["raft", "reinforce_rej"])
def test_a_non_binary_reward_without_a_threshold_is_refused(name, scores):
    rewards, mask = _batch(scores)
    with pytest.raises(ValueError, match=r"not binary \(this batch: .* … .*algorithm\.minimal_rl\.positive_threshold"):
        _estimator(name)(rewards, mask, index=UIDS, config=None)


def test_raft_with_a_threshold_that_fits_the_reward_model():
    rewards, mask = _batch(REWARD_MODEL)
    adv, _ = _estimator("raft")(rewards, mask, index=UIDS, config={"minimal_rl": {"positive_threshold": -2.1}})
    assert adv[:, 0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]


def test_verls_own_estimator_with_drop_uniform_keeps_groups_whose_rewards_differ():
    """The sampler's decision for verl's own GRPO: zero reward variance, whatever the reward."""
    pytest.importorskip("transfer_queue")
    from verl_ext.sampler import SamplerSettings

    settings = SamplerSettings.parse({"algorithm": "grpo", "minimal_rl": {"sample_filter": "drop_uniform"}})
    for scores in (REWARD_MODEL, LENGTHS):
        result = settings.weights(scores, list(UIDS))
        assert result.keep.tolist() == [True] * 4 + [False] * 4 + [True] * 4


def test_binary_rewards_keep_todays_decisions():
    for scores in ([1, 1, 1, 1, 1, -1, -1, -1], [1, 1, 1, 1, 1, 0, 0, 0]):
        rewards, mask = _batch(scores)
        adv, _ = _estimator("reinforce_rej")(rewards, mask, index=UIDS[:8], config=None)
        assert adv[:, 0].tolist() == [0, 0, 0, 0, 1, -1, -1, -1]


def test_a_filter_that_keeps_nothing_is_said_loudly(caplog):
    from verl_ext import estimators

    estimators._EMPTY_WATCH.streak = 0
    rewards, mask = _batch(REWARD_MODEL)
    config = {"minimal_rl": {"positive_threshold": 0.0}}
    with caplog.at_level(logging.WARNING, logger="minimal_rl.filtering"):
        for _ in range(3):
            adv, _ = _estimator("raft")(rewards, mask, index=UIDS, config=config)
            assert not adv.any()
    messages = [r.getMessage() for r in caplog.records if "kept NO sample" in r.getMessage()]
    assert len(messages) == 1 and "(verl)" in messages[0] and "-4.2 … -1.6" in messages[0]


@pytest.mark.parametrize("name", ADAPTIVE)
def test_reinforce_ada_is_a_preset_on_the_tested_verl_only(name):
    """verl_ext samples Reinforce-Ada through private worker API (verl_ext/adaptive_rollout.py): a preset on the
    tested verl range, refused with the range elsewhere, before anything starts."""
    from hydra_plugins.minimal_rl_searchpath.verl_host import adaptive_unsupported_reason

    assert name in ESTIMATOR_NAMES and name in preset_names()
    assert adaptive_unsupported_reason(name, "0.9.1") is None
    for old in ("0.7.1", "0.8.5", "0.10.0"):
        assert f"tested with verl >=0.9.1,<0.10.0; verl {old} is installed" in adaptive_unsupported_reason(name, old)
    assert adaptive_unsupported_reason("reinforce_rej", "0.7.1") is None
