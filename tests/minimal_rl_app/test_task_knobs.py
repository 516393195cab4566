"""The embedded task's difficulty knobs on `train` and `compare`: parsed into the task, recorded in the run's
settings, refused with one line and exit 2 when bad, and they change the problems (and the warm-start's cache)."""

import argparse
import json

import pytest

from minimal_rl_app.cli import main
from minimal_rl_app.demo.model import ModelConfig
from minimal_rl_app.demo.task import TaskConfig, make_splits
from minimal_rl_app.demo.warmstart import WarmStartConfig, cache_key
from minimal_rl_app.sources import task_config

from mrl_testing import tiny_run_args


def parse(command, *argv):
    from minimal_rl_app.cli import build_parser

    return build_parser().parse_args([command, *argv])


def test_defaults_are_the_two_digit_task():
    args = parse("train")
    assert args.operand_range is None and args.operations is None and args.allow_negative is False
    assert task_config(args) == TaskConfig()


@pytest.mark.parametrize("command", ["train", "compare"])
def test_knobs_parse_into_the_task(command):
    args = parse(command, "--operand-range", "0", "199", "--operations", "-", "--allow-negative")
    assert task_config(args) == TaskConfig(min_operand=0, max_operand=199, operations=("-",), allow_negative=True)


def test_the_setting_changes_the_problems():
    hard = make_splits(task_config(parse("train", "--operand-range", "0", "199", "--allow-negative")))
    default = make_splits(task_config(parse("train")))
    operands = lambda splits: {int(x) for p in splits.train for x in p.problem[:-1].replace("-", " ").replace("+", " ").split()}
    assert min(operands(default)) == 10 and max(operands(default)) == 99
    assert min(operands(hard)) == 0 and max(operands(hard)) == 199
    assert not any(int(p.answer) < 0 for p in default.train)
    assert any(int(p.answer) < 0 for p in hard.train)
    # 200 x 200 ordered pairs per operation, negatives allowed: 80000 problems (default: 2 x 90 x 90 minus a<b)
    assert len(hard.train) + len(hard.heldout) == 2 * 200 * 200
    assert len(default.train) + len(default.heldout) == 90 * 90 + 90 * 91 // 2


def test_another_setting_gets_another_cached_model():
    model, warm = ModelConfig(), WarmStartConfig()
    keys = {cache_key(TaskConfig(), model, warm), cache_key(TaskConfig(min_operand=0, max_operand=199), model, warm),
            cache_key(TaskConfig(allow_negative=True), model, warm), cache_key(TaskConfig(operations=("+",)), model, warm)}
    assert len(keys) == 4


def test_the_run_records_its_task(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--algorithm", "grpo", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out),
            "--operand-range", "0", "30", "--operations", "+", *tiny_run_args(steps=2, eval_every=2)]
    assert main(argv) == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["task"] == {"min_operand": 0, "max_operand": 30, "operations": ["+"], "allow_negative": False,
                                "num_heldout": 64, "seed": 1234}
    rows = [json.loads(line) for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert all("-" not in r["problem"] and max(map(int, r["problem"][:-1].split("+"))) <= 30 for r in rows)


def one_error_line(capsys, command, wanted):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"minimal-rl {command}: error: ") and wanted in lines[0], lines


@pytest.mark.parametrize("argv, wanted", [
    (["--operand-range", "50", "10"], "min_operand <= max_operand"),
    (["--operand-range", "3", "4"], "too few to hold out"),
    (["--operand-range", "0", "99", "--model", "some/model", "--dataset", "x.jsonl"], "--operand-range shape the embedded task"),
    (["--allow-negative", "--model", "some/model", "--dataset", "x.jsonl"], "--allow-negative shape the embedded task"),
])
@pytest.mark.parametrize("command", ["train", "compare"])
def test_bad_settings_are_one_line_and_exit_2(command, argv, wanted, capsys, tmp_path):
    assert main([command, "--output-dir", str(tmp_path / "out"), *argv]) == 2
    one_error_line(capsys, command, wanted)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--operand-range", "-1", "20"], ["--operand-range", "5"], ["--operations", "*"]])
def test_argparse_refuses_malformed_values(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
