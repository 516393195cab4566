"""The mission's literal command, without a preset, end to end on CPU:
``python -m verl.trainer.main_ppo algorithm.adv_estimator=reinforce_rej ...`` with the user's own data, model,
reward and ``rollout.n`` (issue 17 item 7). Nothing configures minimal-rl's sampler, so the run filters in zero
mode (rejected samples get weight 0 and stay in the batch); it must say so once, at start, with the one override
that turns dropping on, and train.

Two training steps (the CI budget): one run, shared by the tests through the module fixture, made with the same
harness as test_verl_main_ppo.py.
"""

from __future__ import annotations

import pytest
import yaml

from minimal_rl_e2e.harness import HYDRA_CALLBACK_WARNING, ZERO_MODE_FALLBACK, run_main_ppo

pytestmark = pytest.mark.e2e

STEPS = 2
LITERAL_COMMAND = [
    "algorithm.adv_estimator=reinforce_rej",
    # what a user of stock verl sets for this data anyway: several responses per prompt, and a reward
    "actor_rollout_ref.rollout.n=4",
    "reward.custom_reward_function.path=pkg://minimal_rl.reward",
    "reward.custom_reward_function.name=compute_score",
]
DROP_OVERRIDE = "+minimal_rl=sample_filter"


@pytest.fixture(scope="module")
def literal_run(demo_assets, e2e_dir):
    return run_main_ppo(LITERAL_COMMAND, demo_assets, e2e_dir / "literal_reinforce_rej", steps=STEPS,
                        name="literal_reinforce_rej").check()


def test_trains_every_step_with_the_stock_config(literal_run):
    assert sorted(literal_run.steps) == list(range(1, STEPS + 1)), literal_run.tail()
    config = yaml.safe_load((literal_run.run_dir / "hydra" / ".hydra" / "config.yaml").read_text())
    assert config["algorithm"]["adv_estimator"] == "reinforce_rej"
    assert config["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "vanilla"
    assert not config["trainer"]["v1"]["sampler"]["custom_sampler"].get("name")  # no minimal-rl sampler
    assert "minimal_rl" not in config["algorithm"]
    assert not HYDRA_CALLBACK_WARNING.search(literal_run.output)


def test_says_once_at_start_what_it_does_and_the_override(literal_run):
    output = literal_run.output
    assert output.count(ZERO_MODE_FALLBACK) == 1, output[:6000]
    notice = next(line for line in output.splitlines() if ZERO_MODE_FALLBACK in line)
    assert "algorithm.adv_estimator=reinforce_rej" in notice and "'drop_uniform'" in notice
    assert notice.rstrip().endswith(f"To drop them instead, add: {DROP_OVERRIDE}")
    # at start: before Ray and the first training step
    assert output.index(ZERO_MODE_FALLBACK) < output.index("ray init")


def test_rejected_samples_are_zero_weighted_not_dropped(literal_run):
    """Zero mode: no minimal-rl sampler metrics; every advantage is the estimator's -1, 0 (rejected) or +1."""
    for step, data in literal_run.steps.items():
        assert not any(key.startswith("minimal_rl/") for key in data), step
        for key in ("critic/advantages/min", "critic/advantages/max"):
            assert data[key] in (-1.0, 0.0, 1.0), (step, key, data[key])
