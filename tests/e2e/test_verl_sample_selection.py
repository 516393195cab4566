"""Stock GRPO in the stock ``main_ppo`` with its zero-variance groups really dropped:
``algorithm.adv_estimator=grpo +minimal_rl=sample_filter algorithm.minimal_rl.sample_filter=drop_uniform``.
The estimator, the loss and the reward stay the user's (here verl's ``grpo`` and ``vanilla``, and minimal-rl's
Math-Verify reward, set by hand as a user would); the preset only installs the dropping sampler."""

from __future__ import annotations

import pytest
import yaml

from minimal_rl_e2e.harness import ZERO_MODE_FALLBACK, run_main_ppo

pytestmark = pytest.mark.e2e

STEPS = 3
USER_OVERRIDES = [
    "algorithm.adv_estimator=grpo",
    "+minimal_rl=sample_filter",
    "algorithm.minimal_rl.sample_filter=drop_uniform",
    # the user's own settings: GRPO needs several responses per prompt, and a reward for the demo data
    "actor_rollout_ref.rollout.n=4",
    "reward.custom_reward_function.path=pkg://minimal_rl.reward",
    "reward.custom_reward_function.name=compute_score",
]


@pytest.fixture(scope="module")
def grpo_run(demo_assets, e2e_dir):
    return run_main_ppo(USER_OVERRIDES, demo_assets, e2e_dir / "grpo_drop_uniform", steps=STEPS, name="grpo_drop_uniform").check()


def test_stock_grpo_keeps_its_estimator_and_loss(grpo_run):
    config = yaml.safe_load((grpo_run.run_dir / "hydra" / ".hydra" / "config.yaml").read_text())
    assert config["algorithm"]["adv_estimator"] == "grpo"
    assert config["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "vanilla"
    assert config["trainer"]["v1"]["sampler"]["custom_sampler"]["name"] == "MinimalRLSampler"
    assert sorted(grpo_run.steps) == list(range(1, STEPS + 1))
    assert ZERO_MODE_FALLBACK not in grpo_run.output


def test_zero_variance_groups_are_dropped_every_step(grpo_run):
    for step, data in grpo_run.steps.items():
        uniform = data["sample_filter/groups_all_correct"] + data["sample_filter/groups_all_wrong"]
        generated = data["sample_filter/groups_generated"] * 4
        # exactly the uniform groups' responses leave the update
        assert data["sample_filter/samples_dropped"] == pytest.approx(uniform * generated), step
        assert data["sample_filter/samples_in_update"] == pytest.approx(data["sample_filter/groups_mixed"] * generated)
    assert any(d["sample_filter/samples_dropped"] > 0 for d in grpo_run.steps.values()), grpo_run.metric("sample_filter/samples_dropped")


def test_kept_groups_carry_grpo_advantages(grpo_run):
    """Only mixed groups reach verl's GRPO, so no kept response has a zero advantage: the extremes are GRPO's
    +-0.866..1.5 for groups of 4 (verl: unbiased std, epsilon 1e-6), never 0."""
    for step in grpo_run.steps:
        low, high = grpo_run.metric("critic/advantages/min")[step], grpo_run.metric("critic/advantages/max")[step]
        assert low <= -0.49 and high >= 0.49, (step, low, high)
