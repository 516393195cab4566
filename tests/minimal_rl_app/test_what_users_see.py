"""What a user sees: one line per rollout, help and default for every option, the prompt template recorded
with a trained model and used by `eval`, `compare --seeds` with mean and spread, `--report-to`, the figure."""

import argparse
import json

import pytest

from minimal_rl_app.cli import build_parser, main

from mrl_testing import tiny_run_args

TINY_ARGS = tiny_run_args(steps=4, eval_every=4) + ["--save-every", "0"]



@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    """A four-step run (2 mini-batches per rollout: 2 rollouts) and what it printed."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("trained") / "run"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["train", "--cache-dir", cache, "--output-dir", str(out), *TINY_ARGS]) == 0
    return out, buffer.getvalue()


def test_one_progress_line_per_rollout(trained):
    _, printed = trained
    steps = [line.split()[2] for line in printed.splitlines() if line.startswith("[raft_pp] step ") and "step 0:" not in line]
    assert steps == ["2", "4"]  # never the second mini-batch of a rollout as a line of its own


def test_wall_time_says_start_up_is_included(trained):
    assert "wall time" in trained[1] and "start-up and warm-start included" in trained[1]


def subcommand_parsers():
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices


@pytest.mark.parametrize("command", ["train", "compare", "eval", "prepare-data"])
def test_every_option_has_help_and_shows_its_default(command):
    p = subcommand_parsers()[command]
    assert p.formatter_class is argparse.ArgumentDefaultsHelpFormatter
    missing = [a.option_strings[0] for a in p._actions
               if a.option_strings and a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert not missing
    text = p.format_help()
    for flag in ("--seed", "--eval-problems", "--eval-every", "--num-generations", "--temperature", "--backend"):
        if any(flag in a.option_strings for a in p._actions):
            assert flag in text
    if command in ("train", "compare"):
        assert "(default: 256)" in text and "(default: 0)" in text  # --eval-problems, --seed


def test_train_records_the_prompt_template_and_eval_uses_it(trained, tmp_path, capsys, monkeypatch):
    import minimal_rl_app.evaluation as evaluation
    from minimal_rl_app.templates import recorded_template

    out, _ = trained
    assert recorded_template(str(out / "model")) == "plain"
    seen = {}

    def fake_evaluate(generator, benchmarks, **kw):
        seen["messages"] = generator.messages("1+1=")
        return [evaluation.BenchmarkResult("b", 1, 1, 0.0)]

    monkeypatch.setattr(evaluation, "evaluate_benchmarks", fake_evaluate)
    data = tmp_path / "b.jsonl"
    data.write_text('{"problem": "1+1=", "answer": "2"}\n')
    base = ["eval", "--model", str(out / "model"), "--data", str(data), "--k", "1", "--no-progress"]
    assert main(base) == 0
    assert seen["messages"] == [{"role": "user", "content": "1+1="}]
    assert "plain prompt template (recorded with the model)" in capsys.readouterr().out
    assert main([*base, "--prompt-template", "paper"]) == 0  # an explicit flag wins
    assert seen["messages"][0]["role"] == "system"


def test_compare_with_seeds_gives_mean_and_spread(cache, tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", "--algorithms", "reinforce", "--seeds", "0", "1", "--lr", "1e-2", "--cache-dir", cache,
            "--output-dir", str(out), *TINY_ARGS]
    assert main(argv) == 0
    for seed in (0, 1):
        assert json.loads((out / "reinforce" / f"seed-{seed}" / "metrics.json").read_text())["settings"]["seed"] == seed
    table = (out / "compare.md").read_text()
    assert "seeds 0, 1 (cells: mean ± standard deviation over seeds)" in table
    assert "| reinforce | " in table and " ± " in table.split("| reinforce | ")[1].splitlines()[0]
    assert json.loads((out / "compare.json").read_text())["seeds"] == [0, 1]
    assert (out / "compare.png").stat().st_size > 5000


def test_report_to_reaches_trl(cache, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--cache-dir", cache, "--output-dir", str(out), "--report-to", "tensorboard", *TINY_ARGS]) == 0
    events = list((out / "trl").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file under trl/"
    from minimal_rl_app.outputs import OutputDir

    listed = OutputDir(out).files
    assert all(e.relative_to(out).as_posix() in listed for e in events)  # --overwrite may remove them


def test_compare_figure_draws_bands_and_kl_points_without_lines(tmp_path):
    from minimal_rl_app.plots import plot_compare

    def run(acc, kl):
        evals = [{"step": 25 * i, "heldout_accuracy": a, "heldout_kl": k, "heldout_entropy": 0.2} for i, (a, k) in enumerate(zip(acc, kl))]
        steps = [{"step": s, "accuracy": 0.3} for s in range(1, 51)]
        return {"evals": evals, "steps": steps, "settings": {"eval_problems": 256, "eval_samples": 4}}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured = {}
    real_savefig = plt.Figure.savefig

    def keep(fig, *a, **k):
        captured["fig"] = fig
        return real_savefig(fig, *a, **k)

    plt.Figure.savefig = keep
    try:
        plot_compare({"raft": [run([0.3, 0.4, 0.35], [0, .1, .05]), run([0.3, 0.38, 0.41], [0, .08, .1])],
                      "grpo": run([0.3, 0.33, 0.4], [0, .02, .04])}, tmp_path / "c.png")
    finally:
        plt.Figure.savefig = real_savefig
    acc_ax, _, _, kl_ax, tokens_ax = captured["fig"].axes
    assert not tokens_ax.lines  # these runs predate the token count: the budget panel stays empty
    assert len(acc_ax.collections) == 2  # a band per algorithm: min..max of seeds, +-1 s.e. for one run
    assert not kl_ax.lines  # KL vs accuracy: points, not a line joining them in time order
    assert (tmp_path / "c.png").stat().st_size > 5000
