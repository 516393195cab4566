"""Reinforce-Ada's rows in the CLI: trl_ext samples them adaptively, so `minimal-rl train` runs them (a tiny 2-step
run here; every algorithm's run: test_main_job_cli.py) and `compare` accepts them."""

import json

import pytest

from minimal_rl.table import ALGORITHMS
from minimal_rl_app.cli import main

ADAPTIVE = [name for name, spec in ALGORITHMS.items() if spec.adaptive]
from mrl_testing import tiny_run_args

TINY_ARGS = tiny_run_args(eval_every=2)


def test_train_reinforce_ada_balance_runs_two_steps(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--algorithm", "reinforce_ada_balance", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out)]
    assert main([*argv, *TINY_ARGS]) == 0
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["status"] == "complete" and payload["settings"]["algorithm"] == "reinforce_ada_balance"
    assert [s["step"] for s in payload["steps"]] == [1, 2]
    # random weights: every pool all wrong after every round, so drop_uniform keeps nothing
    assert payload["steps"][0]["accuracy"] == 0.0 and payload["steps"][0]["samples_kept_frac"] == 0.0


def test_train_settings_and_compare_names_accept_them():
    from minimal_rl_app.main_job import TRAINABLE, TrainSettings, parse_run_name

    assert set(ADAPTIVE) <= set(TRAINABLE) and len(ADAPTIVE) == 2
    for name in ADAPTIVE:
        assert TrainSettings(algorithm=name).algorithm == name
        assert parse_run_name(f"{name}+drop_uniform") == (name, "drop_uniform")
