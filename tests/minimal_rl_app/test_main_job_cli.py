"""``minimal-rl train`` / ``compare`` end to end on a shrunken demo (random-weight tiny model, 2 steps)
through the real TRL trainers; output files, Ctrl-C, and argument errors (what --overwrite may remove:
test_keeps_user_data.py)."""

import json

import pytest

from minimal_rl_app.cli import build_parser, main
from minimal_rl.table import ALGORITHMS, host_can_sample
from minimal_rl_app.main_job import TRAINABLE as ALGORITHM_CHOICES

from mrl_testing import tiny_run_args

TINY_ARGS = tiny_run_args()



def _png_ok(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_algorithm_choices_match_the_trainable_set():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    [algorithm] = [a for a in train._actions if a.dest == "algorithm"]
    assert tuple(algorithm.choices) == ALGORITHM_CHOICES == tuple(a for a in ALGORITHMS if host_can_sample(a, "trl_ext"))


@pytest.mark.parametrize("algorithm", ALGORITHM_CHOICES)
def test_two_step_train_writes_metrics_and_plot(algorithm, cache, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--algorithm", algorithm, "--cache-dir", cache, "--output-dir", str(out), *TINY_ARGS]) == 0
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["status"] == "complete" and payload["settings"]["algorithm"] == algorithm
    assert [s["step"] for s in payload["steps"]] == [1, 2]
    for s in payload["steps"]:
        for key in ("accuracy", "groups_all_wrong", "groups_mixed", "samples_kept_frac", "heldout_accuracy", "heldout_kl"):
            assert key in s, key
        assert s["accuracy"] == 0.0 and s["groups_all_wrong"] == 1.0  # random weights: every answer wrong
    # RAFT / Reinforce-Rej drop every sample of an all-wrong batch; GRPO and Reinforce keep them.
    expected_kept = 1.0 if ALGORITHMS[algorithm].sample_filter in ("none", "drop_all_correct") else 0.0
    assert payload["steps"][0]["samples_kept_frac"] == expected_kept
    assert [e["step"] for e in payload["evals"]] == [0, 1, 2]
    assert _png_ok(out / "metrics.png")
    assert (out / "model" / "config.json").exists()
    assert len((out / "heldout.jsonl").read_text().splitlines()) == 64


def test_train_with_a_sample_filter_on_grpo(cache, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--algorithm", "grpo", "--sample-filter", "drop_all_wrong", "--cache-dir", cache, "--output-dir", str(out)]
    assert main([*argv, *TINY_ARGS]) == 0
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["settings"]["algorithm"] == "grpo" and payload["settings"]["sample_filter"] == "drop_all_wrong"
    assert payload["steps"][0]["samples_kept_frac"] == 0.0  # random weights: every group all wrong, all dropped


def test_compare_writes_figure_and_table(cache, tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", "--algorithms", "raft_pp", "reinforce_rej", "--cache-dir", cache, "--output-dir", str(out), *TINY_ARGS]
    assert main(argv) == 0
    table = (out / "compare.md").read_text()
    assert "| raft_pp |" in table and "| reinforce_rej |" in table
    assert _png_ok(out / "compare.png")
    assert json.loads((out / "raft_pp" / "metrics.json").read_text())["status"] == "complete"
    assert main(argv) == 2  # a second compare into the same folder is refused
    (out / "compare.md").unlink()
    render = ["compare", "--render-only", "--algorithms", "raft_pp", "reinforce_rej", "--output-dir", str(out)]
    assert main(render) == 0 and "| raft_pp |" in (out / "compare.md").read_text()


def test_ctrl_c_leaves_a_valid_partial_metrics_file(cache, tmp_path):
    from minimal_rl_app.demo.warmstart import WarmStartConfig, load_or_build
    from minimal_rl_app.demo.model import ModelConfig
    from minimal_rl_app.demo.task import TaskConfig
    from minimal_rl_app.demo.evaluate import demo_messages
    from minimal_rl_app.main_job import TrainSettings, run_training

    bundle = load_or_build(
        cache, TaskConfig(num_heldout=64), ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
        WarmStartConfig(max_steps=0), progress=False, log=lambda s: None,
    )

    def factory(reference):
        def evaluate(model, step):
            if step == 2:
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of step 2's evaluation
            return {"heldout_accuracy": 0.0}
        return evaluate

    settings = TrainSettings(algorithm="raft_pp", steps=5, prompts_per_step=2, num_generations=2, eval_every=1)
    rows = [p.to_dict() for p in bundle.splits.train[:50]]
    with pytest.raises(KeyboardInterrupt):
        run_training(settings, bundle.path, rows, factory, tmp_path, {}, progress=False, log=lambda s: None,
                     conversational_prompt=demo_messages, save_model=False)
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["status"] == "interrupted"
    assert [s["step"] for s in payload["steps"]] == [1]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--algorithm", "ppo"], "invalid choice: 'ppo' (choose from 'raft', 'raft_pp'"),
        (["train", "--steps", "0"], "expected a positive integer, got 0"),
        (["train", "--lr", "abc"], "expected a positive number, got 'abc'"),
        (["compare", "--algorithms", "raft", "dpo"], "unknown algorithm 'dpo'"),
        (["compare", "--algorithms", "grpo+drop_some"], "unknown sample filter 'drop_some'"),
        (["train", "--sample-filter", "drop_some"], "invalid choice: 'drop_some'"),
        (["eval", "--model", "m", "--data", "x.jsonl", "--k", "-3"], "expected a positive integer"),
    ],
)
def test_bad_arguments_get_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_dataset_without_model_is_a_usage_error(tmp_path, capsys):
    rc = main(["train", "--dataset", "x.jsonl", "--output-dir", str(tmp_path / "o"), "--no-progress"])
    assert rc == 2 and "need --model" in capsys.readouterr().err


def test_train_any_local_model_on_jsonl_data(cache, tmp_path):
    """The GPU-user path (--model + --dataset), here with a saved tiny model and arithmetic JSONL."""
    from minimal_rl_app.demo.model import ModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    model_dir = tmp_path / "m"
    build_model(tok, ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{a}+{a}=", "answer": str(2 * a)}) + "\n" for a in range(10, 30)))
    out = tmp_path / "run"
    argv = ["train", "--model", str(model_dir), "--dataset", str(data), "--prompt-template", "plain",
            "--max-completion-length", "8", "--output-dir", str(out), *TINY_ARGS[3:]]
    assert main(argv) == 0
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["settings"]["learning_rate"] == 1e-6  # the paper's lr is the default for real models
    assert payload["dataset"] == [str(data)] and len(payload["steps"]) == 2
