"""Our verdict equals the paper's verifier, Math-Verify's ``math_metric`` as the released code configures it,
on a probe corpus built from the real benchmark rows, and the fast path agrees with it wherever it answers.

The reference is computed here, on the main thread, exactly as the released code does
(verl/utils/reward_score/math_verify.py of the paper's fork): gold ``\\boxed{gold}`` with
LatexExtractionConfig, prediction with ExprExtractionConfig + LatexExtractionConfig, any exception -> 0.
Probes on which Math-Verify itself times out are left out of the comparison (and counted).
"""

from __future__ import annotations

import json
import logging
import random
import re
from fractions import Fraction

import pytest

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")

from math_verify import ExprExtractionConfig, LatexExtractionConfig  # noqa: E402
from math_verify.metric import math_metric  # noqa: E402

from minimal_rl import reward  # noqa: E402

DATASETS = ("math500", "minerva_math", "olympiadbench", "gsm8k")
logging.getLogger("math_verify.metric").setLevel(logging.ERROR)  # "did not manage to extract": expected here
_METRIC = math_metric(
    gold_extraction_target=(LatexExtractionConfig(),),
    pred_extraction_target=(ExprExtractionConfig(), LatexExtractionConfig()),
)


class _TimeoutLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        if "Timeout" in str(record.msg):
            self.seen = True


def reference(solution: str, gold: str) -> tuple[float, bool]:
    """(the released code's score, whether Math-Verify hit one of its own timeouts)."""
    handler = _TimeoutLog()
    loggers = [logging.getLogger(n) for n in ("math_verify.parser", "math_verify.grader")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        try:
            score = float(_METRIC(["\\boxed{" + gold + "}"], [solution])[0])
        except Exception:
            score = 0.0
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    return score, handler.seen


# ----------------------------------------------------------------------------------------------
# The probe corpus
# ----------------------------------------------------------------------------------------------

_INT = re.compile(r"-?\d+\Z")
_FRAC = re.compile(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}\Z")
_DEC = re.compile(r"-?\d*\.\d+\Z")

PREFIXES = [
    "",
    "Let's think step by step. We have $x = 3$ and $y = 4$, so $x + y = 7$.\n",
    "First, 12 * 3 = 36. Then we subtract 5 to get 31, or so it seems.\n",
    "We simplify: $\\frac{6}{8} = \\frac{3}{4}$, and then the final answer follows.\n",
]


def _equivalents(answer: str, rng: random.Random) -> list[str]:
    """Other spellings of the same value (and near misses) for numeric answers."""
    a = answer.strip()
    forms: list[str] = []
    if _INT.match(a):
        n = int(a)
        forms += [f"{n}.0", f"{n}.00", f"\\frac{{{2 * n}}}{{2}}", f"{n}\\%", f"0{n}" if n >= 0 else f"-0{-n}"]
        if abs(n) >= 1000:
            forms += [f"{n:,}", f"{n:,}".replace(",", "{,}"), f"{n:,}".replace(",", "\\,"), f"{n:,}".replace(",", " ")]
        forms += [str(n + 1), str(n - 1), f"{n}.5", f"{n}.0000001", f"{n}.001"]
    m = _FRAC.match(a)
    if m:
        sign, p, q = m.group(1), int(m.group(2)), int(m.group(3))
        value = Fraction(p, q) * (-1 if sign else 1)
        close = float(value)
        forms += [f"{sign}{p}/{q}", f"{sign}\\dfrac{{{p}}}{{{q}}}", f"{sign}\\frac{p}{q}" if p < 10 and q < 10 else f"{sign}\\tfrac{{{p}}}{{{q}}}",
                  f"{close:.7f}", f"{close:.6f}", f"{close:.3f}", f"{close:.1f}", f"{sign}\\frac{{{2 * p}}}{{{2 * q}}}"]
    if _DEC.match(a):
        x = float(a)
        forms += [a + "1", a + "01", f"{x + 0.01:.4f}", f"{x:.6f}", "0" + a if a.startswith(".") else a.rstrip("0"),
                  f"{x * 100:g}\\%"]
    rng.shuffle(forms)
    return forms


def _two_boxes(a: str, w: str) -> list[str]:
    return [
        f"I get \\boxed{{{w}}} and finally \\boxed{{{a}}}.",
        f"I get \\boxed{{{a}}} and finally \\boxed{{{w}}}.",
        f"I get $\\boxed{{{w}}}$ and finally $\\boxed{{{a}}}$.",
        f"First guess \\boxed{{{w}}}.\n\nAfter checking the computation again carefully, it is actually \\boxed{{{a}}}.",
        f"\\boxed{{{a}}} \\boxed{{{a}}}",
        f"So \\boxed{{{a}}}. Again: $\\boxed{{{a}}}$.",
        f"\\boxed{{{w}}}, \\boxed{{{a}}}",
        f"The answers are \\boxed{{{w}}} and \\boxed{{{a}}}.",
    ]


def _shapes(prefix: str, x: str) -> list[str]:
    return [
        f"{prefix}\\boxed{{{x}}}",
        f"{prefix}So the answer is $\\boxed{{{x}}}$.",
        f"{prefix}Therefore, the final answer is $\\boxed{{{x}}}$.",
        f"{prefix}The final answer is $\\boxed{{{x}}}$. I hope it is correct.",
        f"{prefix}\\[\\boxed{{{x}}}\\]",
        f"{prefix}Thus \\(\\boxed{{{x}}}\\).",
        f"{prefix}Final Answer: The final answer is ${x}$. I hope it is correct.",
        f"{prefix}The answer is {x}",
        f"{prefix}$${x}$$",
        f"{prefix}\\boxed{{{x}}}%",
        f"{prefix}The final answer is $3$ and $\\boxed{{{x}}}$.",
        f"{prefix}final answer: $y$, $\\boxed{{{x}}}$",
    ]


def build_probes(rows_by_dataset: dict[str, list[dict]], per_dataset: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(family, response, gold) probes: correct, wrong, equivalent forms, one / two / repeated boxes with
    and without $, close and far decimals, thousands separators, N.0, fractions, text answers, no box."""
    rng = random.Random(seed)
    probes: list[tuple[str, str, str]] = []
    for name, rows in rows_by_dataset.items():
        picked = rng.sample(rows, min(per_dataset, len(rows)))
        for row in picked:
            gold = row["answer"]
            other = rng.choice(rows)["answer"]
            prefix = rng.choice(PREFIXES)
            for s in rng.sample(_shapes(prefix, gold), 5):
                probes.append(("correct", s, gold))
            for s in rng.sample(_shapes(prefix, other), 3):
                probes.append(("wrong", s, gold))
            for form in _equivalents(gold, rng)[:6]:
                probes.append(("equivalent", rng.choice(_shapes(prefix, form)[:6]), gold))
            wrong = other if other != gold else gold + "1"
            for s in rng.sample(_two_boxes(gold, wrong), 3):
                probes.append(("two_boxes", prefix + s, gold))
            probes.append(("no_box", prefix + "I am not sure how to finish this.", gold))
            probes.append(("no_box", "", gold))
    # text answers and a few pathological shapes, on real golds
    texts = [r["answer"] for r in rows_by_dataset.get("math500", []) if "\\text" in r["answer"]][:10]
    for gold in texts:
        inner = re.sub(r"\\text\{(.*)\}", r"\1", gold)
        for s in (f"\\boxed{{{inner}}}", f"\\boxed{{\\text{{{inner}}}}}", f"\\boxed{{{inner.lower()}}}", f"The answer is {inner}."):
            probes.append(("text", s, gold))
    big = "1" * 4301
    probes += [
        ("huge", "\\boxed{" + big + "}", big), ("huge", "\\boxed{" + big + "}", "5"), ("huge", "\\boxed{5}", big),
        ("huge", "\\boxed{" + "9" * 5000 + "}", "9"), ("huge", "\\frac{1}{(((((" * 2000 + " so \\boxed{7}", "7"),
    ]
    return probes


@pytest.fixture(scope="module")
def rows_by_dataset(shared_data):
    return {n: [json.loads(line) for line in (shared_data / f"{n}.jsonl").read_text().splitlines()] for n in DATASETS}


@pytest.fixture(scope="module")
def corpus(rows_by_dataset):
    probes = build_probes(rows_by_dataset, per_dataset=40)
    refs = [reference(s, g) for _, s, g in probes]
    return probes, refs


@pytest.mark.slow
def test_agreement_with_math_metric_on_the_probe_corpus(corpus):
    probes, refs = corpus
    assert len(probes) >= 2000
    stats_before = reward.reward_stats()
    # the main thread (TRL, scripts): in this process
    ours_main = [reward.compute_score("probe", s, g)["acc"] for _, s, g in probes]
    # batches (TRL's reward function): the helper pool, in parallel
    ours_pool = [max(0.0, v) for v in reward.math_verify_reward([s for _, s, _ in probes], [g for _, _, g in probes])]
    timed_out = [i for i, (_, t) in enumerate(refs) if t]
    disagree_main = [(probes[i], refs[i][0], ours_main[i]) for i in range(len(probes)) if not refs[i][1] and refs[i][0] != ours_main[i]]
    disagree_pool = [(probes[i], refs[i][0], ours_pool[i]) for i in range(len(probes)) if not refs[i][1] and refs[i][0] != ours_pool[i]]
    fast = sum(reward.fast_verdict(s, g) is not None for _, s, g in probes)
    stats = reward.reward_stats()
    print(f"\n{len(probes)} probes, Math-Verify timed out on {len(timed_out)}; fast path answered {fast}; "
          f"correct per the reference: {sum(r for r, _ in refs):.0f}; "
          f"timeouts of ours: {stats['timeouts'] - stats_before['timeouts']}")
    assert not disagree_main, disagree_main[:5]
    assert not disagree_pool, disagree_pool[:5]
    assert len(timed_out) <= 5
    # every family is present and has both verdicts somewhere
    families = {f for f, _, _ in probes}
    assert families >= {"correct", "wrong", "equivalent", "two_boxes", "no_box", "text", "huge"}
    assert 0.2 < sum(r for r, _ in refs) / len(refs) < 0.8


@pytest.mark.slow
def test_the_issue_examples_match_math_metric():
    """The shapes of issue 11 where the old exact-number fast path answered differently."""
    cases = [
        ("I get \\boxed{6} and finally \\boxed{5}.", "5"),
        ("\\boxed{0.3562501}", ".35625"),
        ("I get $\\boxed{6}$ and finally $\\boxed{5}$.", "5"),
        ("\\boxed{6} \\boxed{5}", "5"),
        ("\\boxed{95.0}", "95"),
        ("\\boxed{1,000}", "1000"),
        ("\\boxed{\\frac{1}{2}}", "0.5"),
    ]
    for solution, gold in cases:
        expected, timed_out = reference(solution, gold)
        assert not timed_out
        assert reward.compute_score("x", solution, gold, score_mapping="binary")["score"] == expected, solution
        assert reward.math_verify_reward([solution] * 3, [gold] * 3, score_mapping="binary") == [expected] * 3


# ----------------------------------------------------------------------------------------------
# The fast path, fuzzed around its boundary
# ----------------------------------------------------------------------------------------------

_LEADS = ["", "So ", "The answer is ", "Therefore, the final answer is ", "final answer: ", "Final Answer: the final answer is ",
          "The final answer, after checking, is ", "Hence the final answer for part (a) or (b) is ", "We get $x=2$ and ",
          "$3$, ", "$\\frac{1}{2}$ and ", "Answer: ", "I hope the answer is ", "\\(x\\) or ", "It is 7 and ",
          "So we get 12 \\% of it, i.e. ", "\\frac{3}{4} or ", "The final answer is $5$ or "]
_OPEN_CLOSE = [("", ""), ("$", "$"), ("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), (" [", "] "), ("$x = ", "$"),
               ("$\\text{ans} = ", "$"), ("\\[ y=", " \\]")]
_TAILS = ["", ".", " .", "\n", "$", ".$", " I hope it is correct.", "%", " percent", ", and 4", " or $3$", "\\%", " and \\boxed{4}",
          "}", " 3", "$.", "\n\n", " (done)", "\\]."]


def _fuzz_cases(n: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        gold = rng.choice(["5", "42", "0", "-3", "1000", "123456", "7"])
        pred = rng.choice([gold, gold, str(int(gold) + 1), "-" + gold.lstrip("-"), "0" + gold.lstrip("-"), gold + ".0",
                           "1,000" if gold == "1000" else gold])
        lead = rng.choice(_LEADS)
        opening, closing = rng.choice(_OPEN_CLOSE)
        tail = rng.choice(_TAILS)
        pre = rng.choice(PREFIXES) if rng.random() < 0.5 else ""
        box = rng.choice(["\\boxed{" + pred + "}", "\\boxed{" + pred + "}", "\\boxed {" + pred + "}", "\\fbox{" + pred + "}"])
        cases.append((pre + lead + opening + box + closing + tail, gold))
    return cases


@pytest.mark.slow
def test_fast_path_agrees_with_math_metric_wherever_it_answers():
    """Responses composed around one box (leads with and without Math-Verify's anchors and separators,
    every delimiter, tails it accepts and rejects, CoT prefixes): every verdict the fast path gives is
    math_metric's. 600 answered cases, drawn from up to 20000 candidates."""
    answered = declined = 0
    for solution, gold in _fuzz_cases(20000):
        verdict = reward.fast_verdict(solution, gold)
        if verdict is None:
            declined += 1
            continue
        answered += 1
        expected, timed_out = reference(solution, gold)
        assert not timed_out
        assert float(verdict) == expected, (solution, gold)
        if answered == 600:
            break
    print(f"\nfast path answered {answered} fuzzed responses (declined {declined}), all as math_metric does")
    assert answered == 600


def test_fast_path_declines_every_shape_it_cannot_prove():
    declined = [
        ("I get \\boxed{6} and finally \\boxed{5}.", "5"),  # two boxes
        ("\\boxed{5}%", "5"),  # percent after the box
        ("The final answer is $3$ and $\\boxed{5}$.", "5"),  # a chain after "final answer"
        ("\\boxed{5.0}", "5"), ("\\boxed{05}", "5"), ("\\boxed{1,000}", "1000"), ("\\boxed{5}", "5.0"),
        ("\\boxed{5} I hope it is correct.", "5"), ("\\text{\\boxed{5}}", "5"), ("\\boxed{5} and 4", "5"),
        ("\\boxed{" + "1" * 30 + "}", "1" * 30), ("x" * 40000 + "\\boxed{5}", "5"),
    ]
    for solution, gold in declined:
        assert reward.fast_verdict(solution, gold) is None, solution
    assert reward.fast_verdict("So the final answer is $\\boxed{42}$.", "42") is True
    assert reward.fast_verdict("\\[\\boxed{-3}\\]", "-3") is True
    assert reward.fast_verdict("\\boxed{41}", "42") is False
    assert reward.fast_verdict("I have no idea.", "42") is False  # nothing Math-Verify could extract
    assert reward.fast_verdict("I have no idea, maybe 42.", "42") is None
