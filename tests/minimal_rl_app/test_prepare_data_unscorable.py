"""prepare-data and the reward: a gold answer the reward used to crash on is scored, and a row the answer
check cannot score is skipped and counted instead of aborting the whole dataset."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")

from minimal_rl_app import prepare as prep  # noqa: E402

HUGE = "1" * 4301


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_huge_gold_answer_no_longer_aborts(tmp_path):
    rows = [{"problem": "p1", "answer": "5"}, {"problem": "p2", "answer": HUGE}, {"problem": "p3", "answer": "\\frac{1}{2}"}]
    summary = prep.prepare_dataset("math500", str(tmp_path / "out"), input_path=write_jsonl(tmp_path / "in.jsonl", rows),
                                   formats=("verl",))
    # Math-Verify matches the digits as a string, so the row is verifiable and kept
    assert (summary.rows_read, summary.rows_written, summary.dropped_unscorable) == (3, 3, 0)


def test_row_the_check_cannot_score_is_skipped_and_counted(tmp_path, monkeypatch, caplog):
    real = prep.verify_many

    def flaky(solutions, golds, **kwargs):  # the verifier fails on one row (status "error")
        return [(False, "error") if gold == "boom" else v for gold, v in zip(golds, real(solutions, golds, **kwargs))]

    monkeypatch.setattr(prep, "verify_many", flaky)
    rows = [{"problem": "p1", "answer": "5"}, {"problem": "p2", "answer": "boom"}, {"problem": "p3", "answer": "7"}]
    summary = prep.prepare_dataset("math500", str(tmp_path / "out"), input_path=write_jsonl(tmp_path / "in.jsonl", rows),
                                   formats=("verl",))
    assert (summary.rows_read, summary.rows_written, summary.dropped_unscorable) == (3, 2, 1)
    assert "1 the check could not score" in summary.as_text()
    assert json.loads(open(summary.outputs["summary"]).read())["dropped_unscorable"] == 1
    assert any("answer check could not score 'boom'" in r.getMessage() for r in caplog.records)
