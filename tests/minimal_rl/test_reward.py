"""The Math-Verify reward on real MATH500 rows, off the main thread, and on pathological outputs."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")

from minimal_rl.reward import (  # noqa: E402
    compute_score,
    fast_verdict,
    is_correct,
    last_boxed,
    math_verify_reward,
)


@pytest.fixture(scope="module")
def math500(shared_data):
    return [json.loads(line) for line in (shared_data / "math500.jsonl").read_text().splitlines()]


def answer_of(row):
    return f"Let me think. The computation gives the result.\nThe final answer is $\\boxed{{{row['answer']}}}$."


def test_correct_and_wrong_boxed_answers_on_real_rows(math500):
    for row in math500[:20]:
        assert compute_score("math500", answer_of(row), row["answer"]) == {"score": 1.0, "acc": 1.0}, row["answer"]
    wrong = {"answer": "12345"}
    assert compute_score("math500", answer_of(wrong), math500[2]["answer"]) == {"score": -1.0, "acc": 0.0}


def test_binary_score_mapping(math500):
    row = math500[2]
    assert compute_score("math500", answer_of(row), row["answer"], score_mapping="binary")["score"] == 1.0
    assert compute_score("math500", "no idea", row["answer"], score_mapping="binary") == {"score": 0.0, "acc": 0.0}
    with pytest.raises(ValueError, match="signed"):
        compute_score("math500", "x", "1", score_mapping="unit")


def test_equivalent_forms(math500):
    half = next(r for r in math500 if r["answer"] == "\\frac{1}{2}")
    for form in ["\\frac12", "0.5", "\\dfrac{1}{2}", "1/2"]:
        assert is_correct(f"So the answer is $\\boxed{{{form}}}$.", half["answer"]), form
    assert not is_correct("So the answer is $\\boxed{0.25}$.", half["answer"])
    polar = math500[0]  # \left( 3, \frac{\pi}{2} \right)
    assert is_correct("$\\boxed{(3, \\pi/2)}$", polar["answer"])


def test_garbage_and_empty_outputs(math500):
    gold = math500[2]["answer"]
    for garbage in ["", "\\boxed{", "}}}{{{\\boxed{\\frac{", "\x00\x01\x02", "\\boxed{}", "lorem ipsum " * 50]:
        assert compute_score("math500", garbage, gold)["score"] == -1.0
    assert compute_score("math500", None, gold)["score"] == -1.0
    assert compute_score("math500", 12345, gold)["score"] == -1.0


def test_very_long_output_is_bounded_in_time(math500):
    row = math500[2]
    degenerate = "\\frac{1}{(((((" * 20000 + f" so \\boxed{{{row['answer']}}}"
    start = time.perf_counter()
    assert is_correct(degenerate, row["answer"])
    assert time.perf_counter() - start < 30


def test_called_from_worker_threads(math500):
    """verl's reward workers and threaded Ray actors call off the main thread, where Math-Verify's
    signal-based timeout cannot work: the helper process must take over."""
    rows = math500[:6]
    # \\sqrt form needs the full Math-Verify path, not the plain-number fast path
    texts = [answer_of(r) for r in rows] + ["$\\boxed{3\\sqrt{13}}$"]
    golds = [r["answer"] for r in rows] + ["\\sqrt{117}"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda tg: compute_score("math500", tg[0], tg[1])["score"], zip(texts, golds)))
    assert results == [1.0] * 7
    seen = []
    t = threading.Thread(target=lambda: seen.append(is_correct("\\boxed{x}", "y")))
    t.start()
    t.join(timeout=120)
    assert seen == [False]


def test_last_boxed_handles_nesting():
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{3} then \\boxed{unclosed") == "3"


def test_fast_verdict_answers_only_where_math_verify_rules_fix_the_verdict():
    # one boxed plain integer against a plain-integer gold
    assert fast_verdict("So the answer is $\\boxed{95}$.", "95") is True
    assert fast_verdict("\\boxed{94}", "95") is False
    # everything else is Math-Verify's to decide
    assert fast_verdict("\\boxed{95.0}", "95") is None
    assert fast_verdict("\\boxed{\\frac{1}{2}}", "0.5") is None
    assert fast_verdict("\\boxed{x+1}", "95") is None
    assert fast_verdict("I get \\boxed{6} and finally \\boxed{5}.", "5") is None
    # nothing extractable at all: wrong whatever the gold
    assert fast_verdict("no idea", "95") is False


def test_trl_reward_function(math500):
    rows = math500[:3]
    completions = [answer_of(r) for r in rows]
    completions[1] = "I give up."
    conversational = [[{"role": "assistant", "content": c}] for c in completions]
    answers = [r["answer"] for r in rows]
    assert math_verify_reward(completions, answers) == [1.0, -1.0, 1.0]
    assert math_verify_reward(conversational, answers, score_mapping="binary") == [1.0, 0.0, 1.0]


def test_gsm8k_integer_answers(shared_data):
    rows = [json.loads(line) for line in (shared_data / "gsm8k.jsonl").read_text().splitlines()[:10]]
    for row in rows:
        assert is_correct(f"\\boxed{{{row['answer']}}}", row["answer"])
        assert not is_correct(f"\\boxed{{{row['answer']}1}}", row["answer"])


# A real input on which Math-Verify (sympy) runs for minutes without a time limit.
PATHOLOGICAL = ("\\boxed{9^{9^{9^{9}}}}", "9^{9^{9^{8}}}")


def test_pathological_comparison_times_out_on_the_main_thread():
    start = time.perf_counter()
    assert not is_correct(*PATHOLOGICAL, timeout_s=1)
    assert time.perf_counter() - start < 30


def test_pathological_comparison_times_out_off_the_main_thread():
    is_correct("\\boxed{x^2}", "x^2")  # start the helper process outside the timed part
    out = []
    worker = threading.Thread(target=lambda: out.append((is_correct(*PATHOLOGICAL, timeout_s=1), is_correct("\\boxed{x^2}", "x^2"))))
    start = time.perf_counter()
    worker.start()
    worker.join(timeout=120)
    # timed out -> wrong; the helper process was replaced and the next call still works
    assert out == [(False, True)]
    assert time.perf_counter() - start < 60
