"""The compare table's numbers and findings checks, on hand-made run records."""

import pytest

from minimal_rl_app.comparison import _interp_kl_at, aggregate, analyse, markdown_table


def run(accs, kls, ents, steps_acc=0.4):
    evals = [
        {"step": 25 * i, "heldout_accuracy": a, "heldout_kl": k, "heldout_entropy": e}
        for i, (a, k, e) in enumerate(zip(accs, kls, ents))
    ]
    steps = [{"step": s, "accuracy": steps_acc, "groups_all_wrong": 0.1, "groups_all_correct": 0.0, "samples_kept_frac": 0.5}
             for s in range(1, 25 * (len(accs) - 1) + 1)]
    return {"evals": evals, "steps": steps, "train_seconds": 10.0}


def test_interpolated_kl_at_matched_accuracy():
    evals = [{"heldout_accuracy": 0.3, "heldout_kl": 0.0}, {"heldout_accuracy": 0.5, "heldout_kl": 0.2}]
    assert _interp_kl_at(evals, 0.4) == pytest.approx(0.1)
    assert _interp_kl_at(evals, 0.6) is None


def test_findings_hold_and_fail_as_constructed():
    runs = {
        # RAFT++ fast early, entropy collapses; GRPO slow early; Reinforce-Rej same accuracy at half the KL.
        "raft_pp": run([0.3, 0.4, 0.42, 0.44, 0.45], [0, .1, .1, .1, .1], [0.2, 0.15, 0.1, 0.05, 0.05]),
        "grpo": run([0.3, 0.32, 0.34, 0.40, 0.50], [0, .1, .2, .3, .4], [0.2, 0.2, 0.19, 0.18, 0.18]),
        "reinforce_rej": run([0.3, 0.32, 0.34, 0.40, 0.50], [0, .05, .1, .15, .2], [0.2, 0.2, 0.2, 0.2, 0.2]),
        "reinforce": run([0.3, 0.3, 0.3, 0.3, 0.3], [0] * 5, [0.2] * 5),
        "reinforce_remove_all_wrong": run([0.3, 0.32, 0.34, 0.40, 0.46], [0] * 5, [0.2] * 5),
    }
    a = analyse(runs)
    rows = a["rows"]
    # early = evaluations in the first third of 100 steps (33 -> the eval at step 25 only)
    assert rows["raft_pp"]["heldout_early"] == pytest.approx(0.4)
    assert rows["raft_pp"]["heldout_end"] == pytest.approx(0.445)
    assert rows["grpo"]["kl_end"] == pytest.approx(0.35)
    assert a["matched_accuracy"] == pytest.approx(0.3)  # "reinforce" never improved
    held = {f["finding"][:2]: f["held"] for f in a["findings"]}
    assert held["1."] is True and held["2."] is True
    assert held["5."] is True  # KL end 0.175 vs 0.35 for the same gain (0.30 -> 0.45)
    assert held["4."] is True  # 0.13 of GRPO's 0.15 gap (end = mean of last two evals) comes from removing all-wrong groups
    table = markdown_table(a, {"steps": 100}, 60.0)
    assert "| algorithm | held-out acc. start | early (steps ≤ 25) | end (mean of last 2 evals) |" in table
    assert "| raft_pp | 0.300 | 0.400 | 0.445 | 0.200 → 0.050 | 0.1000 |" in table
    assert "holds in this run" in table


def test_finding_fails_when_the_numbers_say_so():
    runs = {
        "raft_pp": run([0.3, 0.32, 0.4], [0, .1, .1], [0.2, 0.2, 0.2]),
        "grpo": run([0.3, 0.38, 0.4], [0, .1, .1], [0.2, 0.2, 0.2]),
    }
    [f1] = analyse(runs)["findings"]
    assert f1["held"] is False


def test_finding_3_importance_sampling_without_clipping_vs_raft():
    clip = [{"step": s, "clip_ratio": 0.02} for s in range(1, 101)]
    runs = {
        "raft": run([0.3, 0.35, 0.4, 0.42, 0.44], [0, .05, .05, .06, .06], [0.2] * 5),
        "raft_pp": dict(run([0.3, 0.35, 0.4, 0.42, 0.44], [0] * 5, [0.2] * 5), steps=clip),
        "raft_pp_no_clip": run([0.3, 0.33, 0.35, 0.36, 0.38], [0, .1, .2, .3, .4], [0.2] * 5),
    }
    a = analyse(runs)
    [f3] = [f for f in a["findings"] if f["finding"].startswith("3.")]
    assert f3["held"] is True
    assert "RAFT++ without clipping 0.370 vs RAFT 0.430" in f3["numbers"]
    assert "RAFT++ clipped 2.00% of its tokens" in f3["numbers"]
    runs["raft_pp_no_clip"] = runs["raft"]
    [f3] = [f for f in analyse(runs)["findings"] if f["finding"].startswith("3.")]
    assert f3["held"] is False


def test_several_seeds_give_mean_and_spread_and_count_the_findings():
    seed0 = analyse({"raft_pp": run([0.3, 0.4, 0.44], [0, .1, .1], [0.2] * 3), "grpo": run([0.3, 0.32, 0.4], [0, .1, .2], [0.2] * 3)})
    seed1 = analyse({"raft_pp": run([0.3, 0.36, 0.40], [0, .1, .1], [0.2] * 3), "grpo": run([0.3, 0.38, 0.4], [0, .1, .2], [0.2] * 3)})
    a = aggregate([seed0, seed1])
    r = a["rows"]["raft_pp"]
    assert r["heldout_end"] == pytest.approx((0.42 + 0.38) / 2)
    assert r["heldout_end_std"] == pytest.approx(((0.02 ** 2 + 0.02 ** 2) / 1) ** 0.5)
    [f1] = a["findings"]
    assert (f1["held_in"], f1["measured"]) == (1, 2)  # seed 0: 0.4 > 0.32; seed 1: 0.36 < 0.38
    table = markdown_table(a, {"steps": 50, "eval_problems": 256, "eval_samples": 4}, 60.0, seeds=[0, 1])
    assert "| raft_pp | 0.300 ± 0.000 | 0.380 ± 0.028 | 0.400 ± 0.028 |" in table
    assert "held in 1 of 2 seeds" in table and "seeds 0, 1 (cells: mean ± standard deviation over seeds)" in table
