"""``minimal-rl eval``: average@k on real MATH500 rows, a model that cannot solve them, an oracle
generator, and a verification that hangs (it must be killed, not wait forever)."""

import json
import time

import pytest

from minimal_rl_app.cli import main
from minimal_rl_app.evaluation import evaluate_benchmarks, results_table, score_all


def _rows(shared_data, n=10):
    return [json.loads(line) for line in (shared_data / "math500.jsonl").read_text().splitlines()[:n]]


def oracle(rows, k):
    """A generator that always answers correctly, in the paper's \\boxed{} format."""
    return [[f"Reasoning... so the answer is $\\boxed{{{r['answer']}}}$." for _ in range(k)] for r in rows]


def half_oracle(rows, k):
    """Right on even samples, wrong on odd ones: average@k must be exactly 1/2."""
    return [[f"\\boxed{{{r['answer']}}}" if i % 2 == 0 else "\\boxed{no idea}" for i in range(k)] for r in rows]


@pytest.mark.slow
def test_oracle_scores_one_and_half_oracle_one_half_on_math500(shared_data):
    rows = _rows(shared_data)
    [r] = evaluate_benchmarks(oracle, {"math500": rows}, k=2, workers=2)
    assert r.accuracy == 1.0 and r.num_problems == 10 and r.per_problem == [1.0] * 10
    [h] = evaluate_benchmarks(half_oracle, {"math500": rows}, k=4, workers=2)
    assert h.accuracy == 0.5
    table = results_table([r, h])
    assert "| math500 | 10 | 2 | 100.0 |" in table and "| **mean** |" in table


@pytest.mark.slow
def test_a_hanging_verification_is_killed_and_scored_wrong(monkeypatch):
    """A completion the verifier hangs on (its timers blocked: only a kill ends it) is killed with its helper
    and scored as wrong; the others are scored (tests/support/reward_hooks.py makes the helpers hang)."""
    import reward_hooks

    from minimal_rl import reward

    monkeypatch.setenv("MINIMAL_RL_REWARD_PYTHON", reward_hooks.hooked_python())
    reward.shutdown()
    try:
        pairs = [("$\\boxed{\\frac{2}{4}}$", "0.5"), (reward_hooks.hooked("hang=600"), "x+1"),
                 ("$\\boxed{\\frac{6}{2}}$", "3"), ("$\\boxed{\\frac{1}{3}}$", "0.5")]
        t0 = time.perf_counter()
        verdicts, timeouts = score_all(pairs, workers=2, timeout_s=1.0)
        assert verdicts == [True, False, True, False] and timeouts == 1
        assert time.perf_counter() - t0 < 120  # not the hang's 600 s
    finally:
        reward.shutdown()


@pytest.mark.slow
def test_eval_cli_on_math500_with_a_model_that_cannot_solve_them(shared_data, tmp_path, capsys):
    from minimal_rl_app.demo.model import ModelConfig, build_model, build_tokenizer

    tok = build_tokenizer()
    model = build_model(tok, ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = tmp_path / "data"
    data.mkdir()
    (data / "math500.jsonl").write_text((shared_data / "math500.jsonl").read_text())
    out = tmp_path / "res.json"
    t0 = time.perf_counter()
    rc = main(["eval", "--model", str(tmp_path / "m"), "--data", str(data), "--limit", "10", "--k", "2",
               "--max-new-tokens", "24", "--output", str(out), "--no-progress"])
    assert rc == 0 and time.perf_counter() - t0 < 240
    res = json.loads(out.read_text())
    assert res["benchmarks"] == {"math500": {"problems": 10, "accuracy": 0.0, "timeouts": 0}}
    assert res["mean_accuracy"] == 0.0 and res["prompt_template"] == "paper" and res["backend"] == "transformers"
    assert "| math500 | 10 | 2 | 0.0 |" in capsys.readouterr().out


def test_eval_cli_missing_data_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", "--model", "whatever", "--data", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
