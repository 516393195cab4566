"""The verdict: Math-Verify exactly as the paper's released code calls it, and the fast path.

``math_verify_verdict`` is ``math_metric``'s verdict from Math-Verify's public functions (parse of the
response and of the boxed gold, ``math_metric``'s ``str`` conversion, ``verify(..., float_rounding=6)``);
``fast_verdict`` answers only the two shapes whose verdict Math-Verify's extraction rules fix (proof:
docs/reward.md). Nothing here bounds time: the callers do (`bounded`, `helper`).
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections import OrderedDict
from typing import Sequence

# The integer fast path stays below Math-Verify's own timeouts by a wide margin (its regex stage takes
# milliseconds on responses of this size).
FAST_PATH_MAX_CHARS = 32768

# ---- The fast path: only where Math-Verify's extraction rules fix the verdict (proof: docs/reward.md)

# A plain integer exactly as Math-Verify's parser returns it unchanged: no sign on zero, no leading zeros,
# a size Math-Verify parses in microseconds.
_PLAIN_INT = re.compile(r"(?:0|-?[1-9][0-9]{0,17})\Z")
# What may follow the box: closing math delimiters, a full stop and white space; nothing Math-Verify
# could read as an answer, a percent sign, a second environment or another closing brace.
_TAIL = re.compile(r"\s*(?:\$\$|\$|\\\]|\\\))?\s*\.?\s*\Z")
# Math-Verify's own spelling of its anchor (case-insensitive, as in its patterns).
_FINAL_ANSWER = re.compile(r"(?i:final answer)")
_DIGIT = re.compile(r"\d")


def fast_verdict(solution: str, ground_truth: str) -> bool | None:
    """Math-Verify's verdict where it follows from its extraction rules alone; None: ask Math-Verify.

    1. Nothing to extract (no digit, no ``$``, ``[``, ``\\(`` or ``\\boxed`` anywhere): wrong, whatever the gold.
    2. The gold is a plain integer and the response's one ``\\boxed{}`` holds a plain integer, followed by
       at most a closing delimiter and a full stop, with no "I hope" anywhere and no ``and`` / ``or`` /
       ``,`` between Math-Verify's "final answer" anchor and the box: correct iff the integers are equal.

    Anything else (two boxes, decimals, separators, fractions, text, a long response) returns None.
    """
    if not isinstance(solution, str) or not isinstance(ground_truth, str):
        return None
    if ("\\boxed" not in solution and "$" not in solution and "[" not in solution and "\\(" not in solution
            and _DIGIT.search(solution) is None):
        return False
    gold = ground_truth.strip()
    if _PLAIN_INT.match(gold) is None or len(solution) > FAST_PATH_MAX_CHARS:
        return None
    start = solution.find("\\boxed{")
    if start < 0 or solution.count("\\boxed") != 1 or "\\fbox" in solution:
        return None
    close = solution.find("}", start + 7)
    if close < 0:
        return None
    predicted = solution[start + 7 : close]
    if _PLAIN_INT.match(predicted) is None or _TAIL.match(solution, close + 1) is None:
        return None
    if "I hope" in solution:
        return None
    anchor = _FINAL_ANSWER.search(solution)
    if anchor is not None:
        between = solution[anchor.start() : start]
        if "and" in between or "or" in between or "," in between:
            return None
    return predicted == gold


# ---- Math-Verify, exactly as the released code calls it


class Deadline(BaseException):
    """Raised by our timers; a BaseException so that Math-Verify's ``except Exception`` lets it through."""


class _MathVerify:
    """Math-Verify's public functions and the two configurations of the released code (lazy import)."""

    def __init__(self) -> None:
        import math_verify
        from math_verify import ExprExtractionConfig, LatexExtractionConfig
        from math_verify.errors import TimeoutException
        from math_verify.utils import timeout

        self.module, self.timeout, self.TimeoutException = math_verify, timeout, TimeoutException
        self.gold_targets = (LatexExtractionConfig(),)
        self.pred_targets = (ExprExtractionConfig(), LatexExtractionConfig())
        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_drop_disabled_timeout_notice)
        # The first LaTeX parse of a process builds the grammar's tables (about a second): do it now,
        # outside any item's time budget.
        # (No timers: this may run off the main thread, where Math-Verify's signal timeouts raise.)
        self.verify(self.parse("\\boxed{\\frac{1}{2}}", self.gold_targets, parsing_timeout=None),
                    self.parse("$x = 0.5$", self.pred_targets, parsing_timeout=None), timeout_seconds=None)

    # Looked up on the module at each call (as ``math_verify.parse(...)`` would be).
    def parse(self, *args, **kwargs):
        return self.module.parse(*args, **kwargs)

    def verify(self, *args, **kwargs):
        return self.module.verify(*args, **kwargs)


def _drop_disabled_timeout_notice(record: logging.LogRecord) -> bool:
    # We run Math-Verify without its signal timeouts only where our own timer bounds it.
    return "Timeout is disabled" not in str(record.msg)


_MV: _MathVerify | None = None
_MV_LOCK = threading.Lock()


def math_verify() -> _MathVerify:
    """Math-Verify, imported (and its LaTeX grammar built) on first use; ImportError without it."""
    global _MV
    if _MV is None:
        with _MV_LOCK:
            if _MV is None:
                _MV = _MathVerify()
    return _MV


class GoldCache:
    """Parsed golds (Math-Verify's parse is deterministic); only parses that finished quickly are kept."""

    def __init__(self, size: int = 4096) -> None:
        self._data: OrderedDict[str, list] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> list | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def put(self, key: str, value: list) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)


LOCAL_GOLD_CACHE = GoldCache()  # this process's (the helpers have their own)


def math_verify_verdict(solution: str, ground_truths: Sequence[str], native_timeouts: bool = True,
                        cache: GoldCache | None = None) -> tuple[bool, str]:
    """(correct, status) from Math-Verify as ``math_metric`` computes it, for any of ``ground_truths``.

    ``native_timeouts``: Math-Verify's own signal timeouts (main thread only); False runs it without them
    (the caller bounds the time). status: "ok", or "gold_unparsed" when no gold parses (wrong).
    """
    mv = math_verify()
    timeouts = {} if native_timeouts else {"parsing_timeout": None}
    prediction = mv.parse(solution, mv.pred_targets, **timeouts)
    any_gold = False
    for answer in ground_truths:
        gold = cache.get(answer) if cache is not None else None
        if gold is None:
            started = time.perf_counter()
            gold = mv.parse("\\boxed{" + answer + "}", mv.gold_targets, **timeouts)
            if cache is not None and time.perf_counter() - started < 1.0:
                cache.put(answer, gold)
        if not gold:
            continue  # math_metric raises "No gold targets found": the released code scores 0
        any_gold = True
        if not _str_conversion_ok(mv, gold, prediction, native_timeouts):
            continue
        if prediction and mv.verify(gold, prediction, 6, **({} if native_timeouts else {"timeout_seconds": None})):
            return True, "ok"
    return False, "ok" if any_gold else "gold_unparsed"


def _str_conversion_ok(mv: _MathVerify, gold: list, prediction: list, native_timeouts: bool) -> bool:
    """math_metric converts the extracted answers to strings (2 s limit) before verifying; an exception
    there (other than its timeout) makes the released code score 0."""

    def convert() -> None:
        for item in itertools.chain(gold, prediction):
            str(item)

    try:
        (mv.timeout(2)(convert) if native_timeouts else convert)()
    except mv.TimeoutException:
        pass
    except Exception:
        return False
    return True


def after_fork() -> None:
    """In a forked child: locks another thread held at the fork are replaced."""
    global _MV_LOCK
    _MV_LOCK = threading.Lock()
    LOCAL_GOLD_CACHE._lock = threading.Lock()
