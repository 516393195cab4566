"""The stock ``python -m verl.trainer.main_ppo +minimal_rl=<preset>`` end to end on CPU, as a user runs it:
rollout (vLLM) -> reward (our Math-Verify reward) -> our estimator -> our dropping sampler -> actor update
-> weight sync -> next rollout, for 3 steps with a checkpoint and a validation pass at step 3, then (one preset
per policy loss, `RESUMED_PRESETS`) a resumed run from that checkpoint for one more step.

Runs are made once per preset (module fixture) and shared by the tests; each test asserts one property
from the logged metrics (verl's ``file`` logger) or the run's output. To add a run, call
`harness.run_main_ppo` (see its docstring) from a fixture like `preset_runs`.
"""

from __future__ import annotations

import importlib.metadata

import pytest
import yaml

from minimal_rl_e2e.harness import (
    HYDRA_CALLBACK_WARNING,
    MAX_PROMPT_TOKENS,
    MAX_RESPONSE_TOKENS,
    ZERO_MODE_FALLBACK,
    Result,
    run_main_ppo,
)

pytestmark = pytest.mark.e2e

TRAIN_STEPS = 3
PRESETS = ("reinforce_rej", "raft", "raft_pp")
# Resumed from the step-3 checkpoint: one preset per policy loss (raft_pp's `vanilla` is reinforce_rej's), the CI
# budget: a resume exercises verl's checkpoint and our sampler and estimator again, not the preset's weights.
RESUMED_PRESETS = ("reinforce_rej", "raft")
# preset -> (policy loss in the composed config, advantage values a kept sample may have)
EXPECTED = {
    "reinforce_rej": ("vanilla", {-1.0, 1.0}),
    "raft": ("raft", {1.0}),
    "raft_pp": ("vanilla", {1.0}),
}
# metrics our estimators / sampler log every training step (verl_ext/sampler.py BatchSelection.apply)
PER_STEP_METRICS = (
    "sample_filter/samples_dropped",
    "sample_filter/padding_samples",
    "sample_filter/samples_kept",
    "sample_filter/accuracy_before_filter",
    "sample_filter/score_before_filter/mean",
    "sample_filter/groups_mixed",
)
COMPAT_WARNING = "has no `trl.experimental.ppo.AutoModelForCausalLMWithValueHead`"


@pytest.fixture(scope="module")
def preset_runs(demo_assets, e2e_dir):
    """``preset -> (training run, resumed run)``, each made on first use."""
    made: dict[str, tuple[Result, Result | None]] = {}

    def get(preset: str) -> tuple[Result, Result | None]:
        if preset not in made:
            train = run_main_ppo(
                preset, demo_assets, e2e_dir / preset, steps=TRAIN_STEPS,
                extra_overrides=[f"trainer.save_freq={TRAIN_STEPS}", f"trainer.test_freq={TRAIN_STEPS}"],
            )
            resumed = None
            if preset in RESUMED_PRESETS and train.returncode == 0 and train.saved_steps():
                resumed = run_main_ppo(preset, demo_assets, e2e_dir / f"{preset}_resume", steps=1, resume=train,
                                       name=f"{preset}_resume")
            made[preset] = (train, resumed)
        return made[preset]

    return get


@pytest.fixture(params=PRESETS)
def preset(request) -> str:
    return request.param


@pytest.fixture
def train_run(preset_runs, preset) -> Result:
    return preset_runs(preset)[0].check()


@pytest.fixture(params=RESUMED_PRESETS)
def resumed_preset(request) -> str:
    return request.param


@pytest.fixture
def resumed_run(preset_runs, resumed_preset) -> Result:
    train, resumed = preset_runs(resumed_preset)
    train.check()
    assert train.saved_steps() == [TRAIN_STEPS], f"no checkpoint at step {TRAIN_STEPS} in {train.checkpoint_dir}"
    assert resumed is not None
    return resumed.check()


def test_runs_every_step_with_our_metrics(train_run):
    assert sorted(train_run.steps) == list(range(1, TRAIN_STEPS + 1)), train_run.tail()
    for step, data in train_run.steps.items():
        missing = [key for key in PER_STEP_METRICS if key not in data]
        assert not missing, f"step {step} lacks {missing}"


def test_advantages_of_kept_samples(train_run, preset):
    """Reinforce-Rej: every kept group is mixed, so advantages are exactly -1 and +1; RAFT / RAFT++: only
    correct responses are kept, advantage 1 (verl's critic/advantages/* are over response tokens)."""
    _, values = EXPECTED[preset]
    for step in train_run.steps:
        seen = {train_run.metric("critic/advantages/min")[step], train_run.metric("critic/advantages/max")[step]}
        assert seen == values, f"step {step}: advantages span {sorted(seen)}, expected {sorted(values)}"


def test_rejected_samples_are_dropped(train_run):
    dropped = train_run.metric("sample_filter/samples_dropped")
    assert any(v > 0 for v in dropped.values()), dropped
    # what reaches the update: kept samples only (the rest of the batch is verl's loss-masked padding)
    for step, kept in train_run.metric("sample_filter/samples_in_update").items():
        assert kept == train_run.metric("sample_filter/samples_kept")[step]


def test_pre_filter_score_tells_the_truth_after_a_drop(train_run):
    """verl's critic/score/mean sees only the kept samples (RAFT: +1 every step); sample_filter/score_before_filter/mean
    is the mean over everything generated, and differs from it whenever samples were dropped."""
    dropped = train_run.metric("sample_filter/samples_dropped")
    before = train_run.metric("sample_filter/score_before_filter/mean")
    after = train_run.metric("critic/score/mean")
    accuracy = train_run.metric("sample_filter/accuracy_before_filter")
    for step, n in dropped.items():
        assert before[step] == pytest.approx(2 * accuracy[step] - 1, abs=1e-6)  # scores are +-1
        if n > 0:
            assert before[step] != pytest.approx(after[step], abs=1e-6), (step, before[step], after[step])


def test_dropped_rows_are_replaced_by_cheap_padding(train_run):
    """The sampler pads the shrunken batch to verl's row multiple itself, with 2-token rows; verl's own
    128-token padding rows would cost more than the dropped rows on these ~20-token samples."""
    for step, data in train_run.steps.items():
        rows = data["sample_filter/samples_in_update"] + data["sample_filter/padding_samples"]
        assert rows % 32 == 0, (step, rows)  # one mini-batch of 8 prompts x 4
        if data["sample_filter/samples_dropped"] > 0:
            assert data["sample_filter/padding_samples"] == data["sample_filter/samples_dropped"]
            # verl's token count of the batch it trains on (dp = 1): every row within the prompt + response
            # limits, which a 128-token verl padding row is not
            assert data["global_seqlen/mean"] <= rows * (MAX_PROMPT_TOKENS + MAX_RESPONSE_TOKENS), (step, data["global_seqlen/mean"])


def test_policy_loss_of_the_preset(train_run, preset):
    loss_mode, _ = EXPECTED[preset]
    config = yaml.safe_load((train_run.run_dir / "hydra" / ".hydra" / "config.yaml").read_text())
    assert config["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == loss_mode
    assert f"'loss_mode': '{loss_mode}'" in train_run.output  # the config verl's TaskRunner printed and used
    pg_loss = train_run.metric("actor/pg_loss")
    if loss_mode == "raft":
        # -A log pi with A = 1: the kept responses' mean token NLL, positive
        assert all(v > 0 for v in pg_loss.values()), pg_loss
    else:
        assert all(v < 0 for v in pg_loss.values()) or preset == "reinforce_rej", pg_loss


def test_no_fallback_or_callback_warning(train_run):
    assert ZERO_MODE_FALLBACK not in train_run.output
    assert not HYDRA_CALLBACK_WARNING.search(train_run.output), HYDRA_CALLBACK_WARNING.search(train_run.output).group(0)


def test_resumed_run_has_no_fallback_or_callback_warning(resumed_run):
    assert ZERO_MODE_FALLBACK not in resumed_run.output
    assert not HYDRA_CALLBACK_WARNING.search(resumed_run.output), HYDRA_CALLBACK_WARNING.search(resumed_run.output).group(0)


def test_validation_pass(train_run):
    val = {k: v for k, v in train_run.steps[TRAIN_STEPS].items() if k.startswith("val-core/")}
    assert val, f"no val-core/* metric at step {TRAIN_STEPS}"
    assert all(0.0 <= v <= 1.0 for v in val.values()), val


def test_resumed_run_starts_at_the_saved_step(resumed_run, preset_runs, resumed_preset):
    train_run = preset_runs(resumed_preset)[0]
    assert sorted(resumed_run.steps) == [TRAIN_STEPS + 1], resumed_run.tail()
    assert f"Resuming from {train_run.checkpoint_dir}/global_step_{TRAIN_STEPS}" in resumed_run.output
    for key in PER_STEP_METRICS:
        assert key in resumed_run.steps[TRAIN_STEPS + 1]


def test_actor_builds_with_trl_installed(train_run, e2e_environment):
    """verl 0.9.1 + TRL 1.16 in one environment (verl_ext/compat.py): the actor was built, and the
    placeholder for TRL's removed class was used (one warning per process that built a model)."""
    assert importlib.metadata.version("trl").startswith("1.16")
    assert "actor and ref model engine initialized" in train_run.output
    assert COMPAT_WARNING in train_run.output
