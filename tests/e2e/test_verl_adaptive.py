"""Reinforce-Ada in the stock ``python -m verl.trainer.main_ppo +minimal_rl=reinforce_ada_balance`` on CPU: prompts
sampled in rounds inside verl's agent-loop worker (`verl_ext.adaptive_rollout`), n kept per prompt, the pool's
baseline in the estimator, uniform pools dropped by the sampler, the rounds metrics logged every step.

Smaller rounds than the preset's (round_repeat 4, max_rounds 3) keep the run short; the logic is the same.
"""

from __future__ import annotations

import pytest

from minimal_rl_e2e.harness import PROMPTS_PER_STEP, SAMPLES_PER_PROMPT, run_main_ppo

pytestmark = pytest.mark.e2e

STEPS = 2
ROUND_REPEAT, MAX_ROUNDS = 4, 3


@pytest.fixture(scope="module")
def ada_run(demo_assets, e2e_dir):
    return run_main_ppo(
        "reinforce_ada_balance", demo_assets, e2e_dir / "reinforce_ada_balance", steps=STEPS,
        extra_overrides=[f"algorithm.minimal_rl.round_repeat={ROUND_REPEAT}", f"algorithm.minimal_rl.max_rounds={MAX_ROUNDS}"],
    ).check()


def test_every_step_logs_the_rounds(ada_run):
    assert sorted(ada_run.steps) == list(range(1, STEPS + 1)), ada_run.tail()
    for step, data in ada_run.steps.items():
        rounds = data["sample_filter/rounds"]
        assert 1 <= rounds <= MAX_ROUNDS, (step, rounds)
        assert data["sample_filter/active_prompts/round_1"] == PROMPTS_PER_STEP
        active = [data[f"sample_filter/active_prompts/round_{k}"] for k in range(1, int(rounds) + 1)]
        assert active == sorted(active, reverse=True) and active[-1] >= 1, (step, active)
        generated = ROUND_REPEAT * sum(active)
        uniform = data["sample_filter/uniform_pools_frac"] * PROMPTS_PER_STEP
        kept = SAMPLES_PER_PROMPT * (PROMPTS_PER_STEP - round(uniform))
        if kept:
            assert data["sample_filter/generated_per_kept"] == pytest.approx(generated / kept), (step, data)
        # what verl trains on: n per prompt with a signal; uniform pools dropped (counted before the filter)
        assert data["sample_filter/samples_in_update"] == kept, (step, data)
        assert data["sample_filter/groups_generated"] == PROMPTS_PER_STEP


def test_advantages_come_from_the_pool_baseline(ada_run):
    """A = c - mean(pool) with c in {0, 1}: inside (-1, 1), both signs on every step that kept a prompt (a kept
    prompt has a correct and a wrong response)."""
    for step, data in ada_run.steps.items():
        if data["sample_filter/samples_in_update"] == 0:
            continue
        low, high = data["critic/advantages/min"], data["critic/advantages/max"]
        assert -1 < low < 0 < high < 1, (step, low, high)


def test_the_run_says_nothing_is_ignored(ada_run):
    assert "Traceback" not in ada_run.output, ada_run.tail()
    assert "Reinforce-Ada rounds failed" not in ada_run.output
