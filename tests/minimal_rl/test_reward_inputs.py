"""The reward never raises on model output or data, and every entry point reads its inputs by one rule:
huge integers, None / NaN / list / tuple / numpy ground truths (several accepted answers = any), non-str
completions."""

from __future__ import annotations

import asyncio
import math
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")

from minimal_rl import reward  # noqa: E402
from minimal_rl.reward import (  # noqa: E402
    completion_text,
    compute_score,
    compute_score_async,
    ground_truth_answers,
    is_correct,
    math_verify_reward,
)

HUGE = "1" * 4301  # one digit over Python's int-to-str limit


def _via_compute_score(completion, ground_truth):
    return compute_score("x", completion, ground_truth, score_mapping="binary")["score"]


def _via_async(completion, ground_truth):
    return asyncio.run(compute_score_async("x", completion, ground_truth, score_mapping="binary"))["score"]


def _via_trl(completion, ground_truth):
    return math_verify_reward([completion], [ground_truth], score_mapping="binary")[0]


def _via_trl_batch(completion, ground_truth):
    # in a batch large enough to go through the helper processes
    return math_verify_reward([completion] * 4, [ground_truth] * 4, score_mapping="binary")[0]


def _via_is_correct(completion, ground_truth):
    return float(is_correct(completion, ground_truth))


ENTRY_POINTS = [_via_compute_score, _via_async, _via_trl, _via_trl_batch, _via_is_correct]

CASES = [
    # (completion, ground truth, expected 1/0)
    ("\\boxed{" + HUGE + "}", "5", 0.0),
    ("\\boxed{" + HUGE + "}", HUGE, 1.0),  # Math-Verify falls back to comparing the strings
    ("\\boxed{5}", HUGE, 0.0),
    ("The answer is " + HUGE, "7", 0.0),
    ("\\boxed{" + HUGE + "}", 10 ** 4400, 0.0),  # an int over the str limit: its digits, no crash
    ("\\boxed{" + HUGE + "}", int(HUGE[:4000]) * 10 ** 301 + int(HUGE[4000:]), 1.0),
    ("\\boxed{None}", None, 0.0),
    ("\\boxed{nan}", float("nan"), 0.0),
    ("\\boxed{nan}", np.float64("nan"), 0.0),
    ("\\boxed{None}", "", 0.0),
    ("\\boxed{3}", ["2", "3"], 1.0),
    ("\\boxed{3}", ("2", "4"), 0.0),
    ("\\boxed{3}", np.array(["2", "3"], dtype=object), 1.0),
    ("\\boxed{3}", [None, float("nan"), "3"], 1.0),
    ("\\boxed{3}", [], 0.0),
    ("\\boxed{3}", np.int64(3), 1.0),
    ("\\boxed{3}", 3, 1.0),
    ("\\boxed{3}", 3.0, 1.0),
    ("\\boxed{0.5}", 0.5, 1.0),
    ("\\boxed{\\frac{1}{2}}", Fraction(1, 2), 1.0),
    ("\\boxed{3}", b"3", 1.0),
    (None, "3", 0.0),
    (3, "3", 1.0),
    (b"\\boxed{3}", "3", 1.0),
    ([{"role": "assistant", "content": "\\boxed{3}"}], "3", 1.0),
    ({"role": "assistant", "content": "\\boxed{3}"}, "3", 1.0),
    ([{"role": "assistant", "content": [{"type": "text", "text": "\\boxed{3}"}]}], "3", 1.0),
    ([], "3", 0.0),
    ("\\boxed{\\frac{", "3", 0.0),
    ("\x00\x01\ud800", "3", 0.0),  # control characters and a lone surrogate
]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_every_entry_point_reads_inputs_by_the_same_rule(entry):
    got = [entry(completion, gold) for completion, gold, _ in CASES]
    assert got == [expected for _, _, expected in CASES]


def test_missing_ground_truths_are_counted_not_silent(caplog):
    before = reward.reward_stats()
    result = compute_score("x", "\\boxed{None}", None, report_unverified=True)
    assert result == {"score": -1.0, "acc": 0.0, "unverified": 1.0}
    assert compute_score("x", "\\boxed{3}", "3", report_unverified=True) == {"score": 1.0, "acc": 1.0, "unverified": 0.0}
    after = reward.reward_stats()
    assert after["invalid_ground_truth"] == before["invalid_ground_truth"] + 1
    assert after["unverified"] == before["unverified"] + 1


class _Hostile:
    def __str__(self):
        raise RuntimeError("no")


def test_hostile_objects_do_not_raise():
    assert completion_text(_Hostile()) == ""
    assert ground_truth_answers(_Hostile()) == []
    assert compute_score("x", _Hostile(), _Hostile())["score"] == -1.0


def test_ground_truth_rule():
    assert ground_truth_answers(None) == []
    assert ground_truth_answers(float("nan")) == []
    assert ground_truth_answers("  ") == []
    assert ground_truth_answers(["a", ("b", None), np.array(["c"])]) == ["a", "b", "c"]
    assert ground_truth_answers(5.0) == ["5"] and ground_truth_answers(2.5) == ["2.5"]
    assert ground_truth_answers(np.float32(0.5)) == ["0.5"]
    assert ground_truth_answers(True) == ["True"]
    assert ground_truth_answers(10 ** 4400) == ["1" + "0" * 4400]
    assert not any(math.isnan(float(a)) for a in ground_truth_answers([1.0, float("nan")]))


def test_configuration_errors_still_raise():
    with pytest.raises(ValueError, match="score_mapping"):
        compute_score("x", "\\boxed{1}", "1", score_mapping="unit")
    with pytest.raises(ValueError, match="timeout_s"):
        compute_score("x", "\\boxed{1}", "1", timeout_s=0)
    with pytest.raises(ValueError, match="score_mapping"):
        math_verify_reward(["\\boxed{1}"], ["1"], score_mapping="unit")


def test_timeout_none_uses_math_verify_own_timeouts():
    # the released code's behaviour: not a silent -1 any more
    assert compute_score("x", "$\\boxed{\\frac{1}{2}}$", "0.5", timeout_s=None)["score"] == 1.0
    assert math_verify_reward(["$\\boxed{\\frac{1}{2}}$"] * 3, ["0.5"] * 3, timeout_s=None) == [1.0] * 3


def test_a_callers_bug_raises_clearly():
    """Model output never makes the reward raise; a caller's bug does: not one answer per completion (it
    used to score the missing ones -1, silently), no answer column at all."""
    with pytest.raises(ValueError, match="3 completions but 1 answers"):
        math_verify_reward(["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"], ["1"])
    with pytest.raises(ValueError, match="1 completions but 2 answers"):
        math_verify_reward(["\\boxed{1}"], ["1", "2"])
    with pytest.raises(ValueError, match="column 'answer'"):
        math_verify_reward(["\\boxed{1}"])
    assert math_verify_reward([], []) == []
