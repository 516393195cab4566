"""What a drop saves in a real verl step: ``+minimal_rl=reinforce_rej`` with ``filter_mode=drop`` (the default)
against ``filter_mode=zero`` (the released fork), same seeds and data, in one session.

The shape is the paper's (four PPO mini-batches per iteration, the KL term on, so a reference pass): 64 prompts x 2
responses per step (n = 2 puts the rejected fraction near 0.5 on this ~30%-accuracy model), mini-batches of 16
prompts. The timings (``timing_s/update_actor``, ``old_log_prob``, ``ref``) are measured and reported as a table in
the terminal summary and in ``drop_vs_zero.md`` of the run folder; they are not asserted (noisy shared cores), the
structure that makes them differ is.
"""

from __future__ import annotations

import statistics

import pytest

from minimal_rl_e2e import harness
from minimal_rl_e2e.harness import run_main_ppo

pytestmark = pytest.mark.e2e

STEPS = 5
PROMPTS, N, MINI_BATCH_PROMPTS = 64, 2, 16
ROWS = PROMPTS * N
SHAPE = [
    f"data.train_batch_size={PROMPTS}",
    f"actor_rollout_ref.rollout.n={N}",
    f"actor_rollout_ref.actor.ppo_mini_batch_size={MINI_BATCH_PROMPTS}",
    "actor_rollout_ref.actor.use_kl_loss=true",  # the paper's k3 KL (0.001, set by the preset): a reference pass
    "data.seed=0",
]
TIMINGS = ("timing_s/update_actor", "timing_s/old_log_prob", "timing_s/ref")


@pytest.fixture(scope="module")
def drop_and_zero(demo_assets, e2e_dir):
    runs = {}
    for mode in ("drop", "zero"):
        runs[mode] = run_main_ppo(
            "reinforce_rej", demo_assets, e2e_dir / f"cost_{mode}", steps=STEPS, name=f"reinforce_rej_{mode}",
            extra_overrides=[*SHAPE, f"algorithm.minimal_rl.filter_mode={mode}"],
        ).check()
    harness.REPORTS.append(report(runs, e2e_dir / "drop_vs_zero.md"))
    return runs


def report(runs: dict, path) -> str:
    drop, zero = runs["drop"], runs["zero"]
    steps = sorted(set(drop.steps) & set(zero.steps) - {1})  # step 1 also starts workers: not an update's cost
    lines = [
        f"drop vs zero, +minimal_rl=reinforce_rej, {PROMPTS} prompts x {N}, mini-batches of {MINI_BATCH_PROMPTS} "
        "prompts, KL on (steps 2-5; seconds)",
        "| step | f rejected (drop run) | rows in update drop / zero | mini-batches drop / zero | update_actor drop / zero "
        "| old_log_prob drop / zero | ref drop / zero |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        d, z = drop.steps[s], zero.steps[s]
        f = d["sample_filter/samples_dropped"] / ROWS
        rows, steps_key = "sample_filter/samples_in_update", "sample_filter/optimizer_steps_per_epoch"
        row = [f"{s}", f"{f:.2f}", f"{d[rows]:.0f} / {z[rows]:.0f}",
               f"{d.get(steps_key, float('nan')):.0f} / {z.get(steps_key, float('nan')):.0f}"]
        row += [f"{d.get(k, float('nan')):.3f} / {z.get(k, float('nan')):.3f}" for k in TIMINGS]
        lines.append("| " + " | ".join(row) + " |")
    f_mean = statistics.mean(drop.steps[s]["sample_filter/samples_dropped"] / ROWS for s in steps)
    lines.append("")
    for key in TIMINGS:
        d = [drop.steps[s][key] for s in steps if key in drop.steps[s]]
        z = [zero.steps[s][key] for s in steps if key in zero.steps[s]]
        if d and z:
            ratio = statistics.median(d) / statistics.median(z)
            lines.append(f"{key}: median drop {statistics.median(d):.3f} s / zero {statistics.median(z):.3f} s = "
                         f"{ratio:.2f} (mean rejected fraction {f_mean:.2f}; target <= {1 - f_mean + 0.10:.2f})")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def test_zero_mode_keeps_every_row(drop_and_zero):
    zero = drop_and_zero["zero"]
    assert sorted(zero.steps) == list(range(1, STEPS + 1))
    for step, data in zero.steps.items():
        assert data["sample_filter/samples_dropped"] == 0 and data["sample_filter/samples_in_update"] == ROWS, step


def test_drop_mode_trains_on_fewer_rows_and_mini_batches(drop_and_zero):
    drop, zero = drop_and_zero["drop"], drop_and_zero["zero"]
    assert sorted(drop.steps) == list(range(1, STEPS + 1))
    assert any(d["sample_filter/samples_in_update"] < ROWS for d in drop.steps.values())
    for step, data in drop.steps.items():
        # verl's mini-batch = 4 prompts x 2 rows; the shrunken batch needs fewer of them
        assert data["sample_filter/optimizer_steps_per_epoch"] == -(-data["sample_filter/samples_in_update"] // (MINI_BATCH_PROMPTS * N))
    assert all(z["sample_filter/optimizer_steps_per_epoch"] == ROWS // (MINI_BATCH_PROMPTS * N) for z in zero.steps.values())
    # the same prompts every step (data.shuffle=false): only the sampled responses differ between the modes
    assert drop.steps[1]["sample_filter/groups_generated"] == zero.steps[1]["sample_filter/groups_generated"] == PROMPTS
