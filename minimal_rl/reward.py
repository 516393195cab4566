"""Math-Verify reward: the verifier of the paper (Sec. 2), usable from verl, TRL and our CLI.

verl:  ``reward.custom_reward_function.path=pkg://minimal_rl.reward`` (function ``compute_score``)
       returns ``{"score": +1 | -1, "acc": 1 | 0}``; ``score_mapping="binary"`` gives 1 / 0 instead.
TRL:   ``reward_funcs=[math_verify_reward]`` (dataset column ``answer``) returns +1 / -1 per completion.

Math-Verify bounds its own run time with ``signal.alarm``, which only works on the main thread. Off
the main thread (verl's reward loop workers, threaded Ray actors, thread pools) we run it in a
spawned helper process instead and kill that process on timeout, so a pathological output can never
hang training: it scores as wrong, with a warning.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import re
import threading
from fractions import Fraction
from typing import Any

logger = logging.getLogger(__name__)

SCORE_MAPPINGS = ("signed", "binary")
# The final answer sits at the end; parsing megabytes of degenerate repetition only costs time.
MAX_CHARS_VERIFIED = 8000

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (nested braces respected), or None."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
        # unbalanced: try an earlier box
    return None


_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")
_FRAC = re.compile(r"^([-+]?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")


def _as_number(text: str) -> Fraction | None:
    t = text.strip().replace(" ", "").replace("{,}", "").rstrip(".")
    t = t.replace("$", "")
    if _NUMBER.match(t):
        return Fraction(t)
    m = _FRAC.match(t)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) == "-" else value
    return None


def fast_verdict(prediction: str, ground_truth: str) -> bool | None:
    """Exact answer comparison for plain numbers and simple fractions; None means "ask Math-Verify".

    Saves most of the verifier's cost on arithmetic tasks (measured here: over half of a CPU RL step).
    Only a *positive* plain-number match is trusted; anything unusual goes to Math-Verify.
    """
    pred, gold = _as_number(prediction), _as_number(ground_truth)
    if pred is not None and gold is not None and pred == gold:
        return True
    if pred is not None and gold is not None and _NUMBER.match(prediction.strip()) and _NUMBER.match(ground_truth.strip()):
        return False  # two plain decimals that differ: no other reading exists
    return None


def _math_verify(solution: str, ground_truth: str, timeout_s: int | None) -> bool:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold = parse(
        "\\boxed{" + ground_truth + "}",
        extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
        parsing_timeout=timeout_s,
    )
    if not gold:
        gold = parse(ground_truth, parsing_timeout=timeout_s)
    answer = parse(solution, parsing_timeout=timeout_s)
    if not gold or not answer:
        return False
    return bool(verify(gold, answer, timeout_seconds=timeout_s))


_pool = None
_pool_lock = threading.Lock()
HELPER_START_TIMEOUT_S = 120.0


def _import_math_verify() -> bool:
    import math_verify  # noqa: F401  (sympy and the grammar load once per helper process)

    return True


def _verify_in_helper_process(solution: str, ground_truth: str, timeout_s: float) -> bool:
    """Run Math-Verify in a spawned helper process; kill and replace it on timeout."""
    global _pool
    with _pool_lock:
        if _pool is None:
            pool = multiprocessing.get_context("spawn").Pool(1)
            # Pay the start-up (interpreter + sympy imports) once, outside the per-item time limit.
            pool.apply_async(_import_math_verify).get(timeout=HELPER_START_TIMEOUT_S)
            _pool = pool
        job = _pool.apply_async(_math_verify, (solution, ground_truth, None))
        try:
            return bool(job.get(timeout=timeout_s))
        except multiprocessing.TimeoutError:
            logger.warning("minimal_rl.reward: Math-Verify timed out after %.0fs; scored as wrong", timeout_s)
            _pool.terminate()
            _pool = None
            return False


def is_correct(solution: str, ground_truth: str, timeout_s: float = 5.0) -> bool:
    """True iff the last boxed answer of ``solution`` equals ``ground_truth`` (Math-Verify semantics).

    Never raises on model output: garbage, empty strings and timeouts are wrong answers.
    """
    if not isinstance(solution, str) or not solution:
        return False
    ground_truth = str(ground_truth).strip()
    solution = solution[-MAX_CHARS_VERIFIED:]
    boxed = last_boxed(solution)
    if boxed is not None:
        verdict = fast_verdict(boxed, ground_truth)
        if verdict is not None:
            return verdict
    try:
        if threading.current_thread() is threading.main_thread():
            return _math_verify(solution, ground_truth, max(1, math.ceil(timeout_s)))
        return _verify_in_helper_process(solution, ground_truth, timeout_s)
    except Exception as exc:  # Math-Verify's own TimeoutException and parser errors
        logger.debug("minimal_rl.reward: Math-Verify failed (%s); scored as wrong", exc)
        return False


def score_from_correct(correct: bool, score_mapping: str = "signed") -> float:
    """+1 / -1 (``signed``, the paper) or 1 / 0 (``binary``)."""
    if score_mapping == "signed":
        return 1.0 if correct else -1.0
    if score_mapping == "binary":
        return 1.0 if correct else 0.0
    raise ValueError(f"score_mapping must be one of {SCORE_MAPPINGS}, got {score_mapping!r}")


def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = "",
    extra_info: Any = None,
    score_mapping: str = "signed",
    timeout_s: float = 5.0,
    **kwargs: Any,
) -> dict[str, float]:
    """verl custom reward function: ``{"score": +1 | -1, "acc": 1 | 0}`` for one response.

    Configure with ``reward.custom_reward_function.path=pkg://minimal_rl.reward`` and, optionally,
    ``+reward.custom_reward_function.reward_kwargs.score_mapping=binary``.
    """
    if isinstance(ground_truth, (list, tuple)):  # several accepted answers
        correct = any(is_correct(solution_str, str(g), timeout_s) for g in ground_truth)
    else:
        correct = is_correct(solution_str, str(ground_truth), timeout_s)
    return {"score": score_from_correct(correct, score_mapping), "acc": float(correct)}


def _completion_text(completion: Any) -> str:
    # TRL passes plain strings, or message lists for conversational datasets.
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def math_verify_reward(completions: list[Any], answer: list[Any], score_mapping: str = "signed", **kwargs: Any) -> list[float]:
    """TRL reward function: one score per completion against the dataset's ``answer`` column."""
    return [
        score_from_correct(is_correct(_completion_text(c), str(a)), score_mapping) for c, a in zip(completions, answer)
    ]
