"""The generation budget in the step records: response tokens of every response the trainer scored (all of
Reinforce-Ada's rounds, not only the kept rows), per step and in all; and the compare's accuracy-vs-tokens curve."""

import json
from types import SimpleNamespace

from minimal_rl_app.comparison import analyse, markdown_table
from minimal_rl_app.main_job import RecordingReward
from minimal_rl_app.plots import plot_compare, tokens_at_evals
from minimal_rl_app.run_log import generation_counts

from mrl_testing import tiny_run_args


def test_recording_reward_counts_every_scored_response_across_rounds():
    reward = RecordingReward()
    state = SimpleNamespace(global_step=0)
    # round 1: two responses of 3 and 5 tokens (EOS included); round 2 of the same step: one of 4
    reward([[{"role": "assistant", "content": "\\boxed{3}"}], [{"role": "assistant", "content": "x"}]], ["3", "3"],
           trainer_state=state, completion_ids=[[1, 2, 3], [1, 2, 3, 4, 5]])
    reward([[{"role": "assistant", "content": "\\boxed{3}"}]], ["3"], trainer_state=state, completion_ids=[[7, 8, 9, 10]])
    assert reward.tokens_generated == 12 and reward.responses_generated == 3
    assert reward.last_scores == [1.0, -1.0, 1.0]  # the rounds of one step are kept together


def test_generation_counts_per_step_and_running_total():
    reward = SimpleNamespace(tokens_generated=12, responses_generated=3)
    # first record after a resume whose last step had 100 tokens / 8 responses in all
    assert generation_counts(reward, (0, 0), (100, 8)) == {
        "tokens_generated": 12, "tokens_generated_cum": 112, "responses_generated": 3, "responses_generated_cum": 11}
    # a later mini-batch of the same rollout: nothing new generated
    assert generation_counts(reward, (12, 3), (100, 8))["tokens_generated"] == 0


def test_a_run_records_tokens_and_they_add_up(tmp_path):
    from minimal_rl_app.cli import main

    out = tmp_path / "run"
    # 2 prompts x 2 samples per rollout, 2 mini-batches: steps 1 and 3 generate, 2 and 4 do not
    argv = ["train", "--algorithm", "grpo", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out),
            *tiny_run_args(steps=4, eval_every=4)]
    assert main(argv) == 0
    steps = json.loads((out / "metrics.json").read_text())["steps"]
    assert [s["responses_generated"] for s in steps] == [4, 0, 4, 0]
    assert [s["tokens_generated"] > 0 for s in steps] == [True, False, True, False]
    running = 0
    for s in steps:
        running += s["tokens_generated"]
        assert s["tokens_generated_cum"] == running
    # a response is 1..16 tokens (the demo's limit)
    assert 4 <= steps[0]["tokens_generated"] <= 4 * 16


def fake_run(cums, accs, eval_steps):
    return {"settings": {"eval_problems": 10, "eval_samples": 1},
            "steps": [{"step": i + 1, "tokens_generated_cum": c, "generated_per_kept": 2.0, "rounds": 1.5,
                       "groups_all_correct": 0.25, "groups_all_wrong": 0.5, "uniform_pools_frac": 0.125}
                      for i, c in enumerate(cums)],
            "evals": [{"step": s, "heldout_accuracy": a} for s, a in zip(eval_steps, accs)]}


def test_accuracy_against_tokens_is_the_mean_over_seeds():
    a = fake_run([10, 10, 30, 30], [0.2, 0.4, 0.6], [0, 2, 4])
    b = fake_run([20, 20, 50, 50], [0.4, 0.6, 0.6], [0, 2, 4])
    x, y, lo, hi = tokens_at_evals([a, b])
    assert x == [0, 15, 40]
    assert [round(v, 6) for v in y] == [0.3, 0.5, 0.6] and lo == [0.2, 0.4, 0.6] and hi == [0.4, 0.6, 0.6]
    assert tokens_at_evals([a, {"steps": [{"step": 1}], "evals": []}]) == ([], [], [], [])


def test_compare_table_and_figure_show_the_budget(tmp_path):
    runs = {"grpo": fake_run([10, 10, 30, 30], [0.2, 0.4, 0.6], [0, 2, 4]),
            "reinforce_ada_pos": fake_run([40, 40, 80, 80], [0.2, 0.5, 0.6], [0, 2, 4])}
    for step in runs["grpo"]["steps"]:  # fixed groups: no pools, no rounds
        for key in ("uniform_pools_frac", "generated_per_kept", "rounds"):
            del step[key]
    analysis = analyse(runs)
    assert analysis["rows"]["grpo"]["uniform_after_sampling"] == 0.75  # all correct + all wrong groups
    assert analysis["rows"]["grpo"]["tokens_per_step"] == 30 / 4
    assert analysis["rows"]["reinforce_ada_pos"]["tokens_generated_cum"] == 80
    table = markdown_table(analysis, {"steps": 4, "eval_problems": 10, "eval_samples": 1}, 60.0)
    # an adaptive run's uniform share is its pools' (0.125), not the per-round groups' (0.25 + 0.5)
    assert "| reinforce_ada_pos | 20 | 80 | 2.00 | 1.50 | 0.12 |" in table
    plot_compare(runs, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_group_kinds_are_the_trainers_own_when_it_logs_them(tmp_path):
    """With Reinforce-Ada a reward call's scores are rounds of the active prompts, not whole groups: the step record
    takes the group kinds the trainer logged (the n kept per prompt); without them it counts the scores' groups."""
    from minimal_rl.metrics import metric_key
    from minimal_rl_app.run_log import MainJobCallback

    settings = SimpleNamespace(name="t", steps=10, num_generations=2, eval_every=100, mini_batches=1)
    # two rounds of one prompt: [right, right] then [wrong, wrong], which cut in blocks of 2 reads as 0.5 / 0.5
    reward = SimpleNamespace(last_scores=[1.0, 1.0, -1.0, -1.0], tokens_generated=0, responses_generated=0)
    callback = MainJobCallback(settings, reward, lambda model, step: {}, tmp_path / "m.json", {}, progress=False,
                               log=lambda text: None)
    callback._t_start = callback._t_last = callback._t_rollout = 0.0
    state = SimpleNamespace(global_step=1)
    logged = {"loss": 0.0, "reward": 0.0, metric_key("groups_all_correct"): 0.0,
              metric_key("groups_all_wrong"): 0.0, metric_key("groups_mixed"): 1.0}
    callback.on_log(None, state, None, logs=logged)
    assert {k: callback.payload["steps"][-1][k] for k in ("groups_all_correct", "groups_all_wrong", "groups_mixed")} == {
        "groups_all_correct": 0.0, "groups_all_wrong": 0.0, "groups_mixed": 1.0}
    state.global_step = 2
    reward.last_scores = [1.0, 1.0, -1.0, 1.0]
    callback._rollout = {}
    callback.on_log(None, state, None, logs={"loss": 0.0, "reward": 0.0})  # no trainer counts: from the scores
    assert callback.payload["steps"][-1]["groups_all_correct"] == 0.5
    assert callback.payload["steps"][-1]["groups_mixed"] == 0.5
