"""The paper's verifier (Sec. 2): Math-Verify's ``math_metric`` verdict, bounded in time, for verl and TRL.

Usage
-----
verl:  ``reward.custom_reward_function.path=pkg://minimal_rl.reward`` with ``name=compute_score_async``
       (awaited directly by verl 0.9's reward loop) or ``name=compute_score`` (run in its thread pool);
       both return ``{"score": +1 | -1, "acc": 1 | 0}`` (``score_mapping="binary"``: 1 / 0;
       ``report_unverified=True`` adds ``"unverified": 1 | 0``).
TRL:   ``reward_funcs=[math_verify_reward]`` (dataset column ``answer``): +1 / -1 per completion, the
       batch verified in parallel.
Any:   ``is_correct(solution, ground_truth)``; ``reward_stats()`` for the counters.

The verdict
-----------
Exactly what the paper's released code computes (its ``verl/utils/reward_score/math_verify.py``)::

    math_metric(gold_extraction_target=(LatexExtractionConfig(),),
                pred_extraction_target=(ExprExtractionConfig(), LatexExtractionConfig()))
    (["\\boxed{" + ground_truth + "}"], [solution])   # any exception -> 0

i.e. ``parse`` of the response and of the boxed gold, the ``str`` conversion ``math_metric`` performs,
then ``verify(gold, prediction, float_rounding=6)``; an unparseable gold is wrong. Several accepted
answers (a list / tuple / array ground truth) are correct if any one is. The only answers given without
Math-Verify are the two shapes where its extraction rules fix the verdict (`fast_verdict`, proved in
docs/reward.md and tested against the real ``math_metric``): a response whose only candidate answer is
one boxed plain integer checked against a plain-integer gold, and a response with nothing Math-Verify
could extract at all.

Where it runs, and the time bound
---------------------------------
``timeout_s`` (default 5) bounds each item's verification, parse and verify together.

* On the main thread (TRL, scripts, evaluation workers): in this process, bounded with ``SIGALRM``.
* Off the main thread (verl's reward loop threads, Ray actors' event loops, thread pools), for
  ``compute_score_async`` and for batches: in a pool of helper processes (`configure` ``pool_size``,
  default the CPU count). Helpers are plain ``subprocess`` children, so they also start inside daemonic
  processes and never re-run the caller's ``__main__``. No lock is held across a verification; a helper
  that overruns its item's budget by ``GRACE_S`` is killed and replaced in the background, so a slow item
  delays nobody else beyond its own timeout.
* If helpers cannot start, verification runs in this process instead (still time-bounded where Python
  allows) and a WARNING says why and how to fix it. Every answer that could not be verified is counted
  (`reward_stats`, and ``"unverified"`` with ``report_unverified=True``); it is never a silent -1.

``timeout_s=None`` gives Math-Verify's own per-stage timeouts only (the released code's behaviour), with a
hard limit of ``NO_TIMEOUT_HARD_LIMIT_S`` off the main thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import json
import logging
import math
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

logger = logging.getLogger(__name__)

SCORE_MAPPINGS = ("signed", "binary")
DEFAULT_TIMEOUT_S = 5.0
# A helper that has not answered GRACE_S after its item's budget is killed (the budget is first enforced
# inside the helper, which then stays alive; the kill is for code Python cannot interrupt).
GRACE_S = 0.5
NO_TIMEOUT_HARD_LIMIT_S = 600.0
HELPER_START_TIMEOUT_S = 120.0
# While callers wait and every helper has been on one item this long, one more is started (up to
# max_pool_size; it stays), so that a few slow items do not hold up the queue behind them. Math-Verify
# takes milliseconds on ordinary answers, so this only fires on slow ones (or a badly overloaded machine).
OVERFLOW_AFTER_S = 2.0
# How many waiting callers a free helper looks through for one whose gold it has parsed already.
AFFINITY_WINDOW = 8
# The integer fast path stays below Math-Verify's own timeouts by a wide margin (its regex stage takes
# milliseconds on responses of this size).
FAST_PATH_MAX_CHARS = 32768
# Statuses whose verdict is not a completed Math-Verify verdict.
UNVERIFIED_STATUSES = frozenset({"timeout", "helper_died", "unavailable", "invalid_ground_truth", "error"})

# --------------------------------------------------------------------------------------------
# Inputs: one rule for compute_score, compute_score_async, math_verify_reward and is_correct
# --------------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The response text of one completion, whatever shape a framework passes.

    str as is; None -> ""; bytes decoded (UTF-8, invalid bytes replaced); a chat message list (TRL's
    conversational format) -> the last message's content; a message dict -> its content; content given
    as a list of parts -> their text joined; anything else -> ``str()``. Never raises.
    """
    try:
        if isinstance(completion, str):
            return completion
        if completion is None:
            return ""
        if isinstance(completion, (bytes, bytearray)):
            return bytes(completion).decode("utf-8", errors="replace")
        if isinstance(completion, dict):
            return completion_text(completion.get("content", ""))
        if isinstance(completion, (list, tuple)):
            if not completion:
                return ""
            if all(isinstance(part, dict) and "content" not in part for part in completion):
                return "".join(str(part.get("text", "")) for part in completion)  # content parts
            return completion_text(completion[-1])
        return str(completion)
    except Exception:  # a hostile __str__ or __getitem__
        return ""


def ground_truth_answers(ground_truth: Any) -> list[str]:
    """The accepted answers of a ground truth; an empty list means there is none to check against.

    str -> [str] (empty or blank: none); None and NaN -> none (never the strings "None" / "nan");
    list / tuple / set / numpy array -> the answers of every element, flattened (correct if any matches);
    numpy scalars -> their Python value; bytes decoded; other values (int, float, Fraction, ...) -> ``str()``.
    Never raises.
    """
    out: list[str] = []
    _collect_answers(ground_truth, out, depth=0)
    return out


def _collect_answers(value: Any, out: list[str], depth: int) -> None:
    try:
        if depth > 8 or value is None:
            return
        if isinstance(value, str):
            if value.strip():
                out.append(value)
            return
        if isinstance(value, (bytes, bytearray)):
            _collect_answers(bytes(value).decode("utf-8", errors="replace"), out, depth + 1)
            return
        if isinstance(value, float):  # parquet / pandas often turn integer answers into floats
            if not math.isnan(value):
                out.append(str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value))
            return
        if isinstance(value, bool):
            out.append(str(value))
            return
        if isinstance(value, int):
            out.append(_int_str(value))
            return
        if isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                _collect_answers(item, out, depth + 1)
            return
        tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
        if callable(tolist) and type(value).__module__.startswith("numpy"):
            _collect_answers(tolist(), out, depth + 1)
            return
        text = str(value)
        if text.strip() and text.strip().lower() not in ("nan", "none", "<na>", "nat"):
            out.append(text)
    except Exception:
        return


def _int_str(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than sys.get_int_max_str_digits(): decimal.Decimal has no such limit
        import decimal

        return format(decimal.Decimal(value), "f")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (nested braces respected), or None."""
    if not isinstance(text, str):
        return None
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


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")

# --------------------------------------------------------------------------------------------
# The fast path: only where Math-Verify's extraction rules fix the verdict (proof: docs/reward.md)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Counters and loud failure
# --------------------------------------------------------------------------------------------

_STATS_KEYS = (
    "calls",  # answers scored (one per response, whatever the number of accepted answers)
    "fast_path",  # decided without Math-Verify
    "math_verify",  # decided by a completed Math-Verify run
    "timeouts",  # budget exceeded: wrong, unverified
    "unverified",  # every answer whose verdict is not Math-Verify's (timeouts, failures, no ground truth)
    "invalid_ground_truth",  # None / NaN / empty ground truth: wrong, unverified
    "gold_unparsed",  # Math-Verify extracts nothing from the boxed gold: wrong (the released code's 0)
    "errors",  # an unexpected exception around Math-Verify: wrong, unverified
    "helper_died",  # a helper exited while verifying (the item is retried once on another helper)
    "helpers_started",
    "helpers_replaced",  # killed after overrunning, or found dead
    "helper_start_failures",
    "fallback_in_process",  # verified in this process because no helper could start
    "unbounded",  # verified without any time limit (no helper and no way to interrupt a thread)
)
_STATS: dict[str, Any] = dict.fromkeys(_STATS_KEYS, 0)
_STATS["peak_busy_helpers"] = 0  # most helpers verifying at the same time
_STATS["max_verify_s"] = 0.0  # longest verification, from its start (in a helper: dispatch) to its verdict
_STATS_LOCK = threading.Lock()
_WARNED: set[str] = set()


def _count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        _STATS[key] += n


def _note_duration(seconds: float) -> None:
    with _STATS_LOCK:
        if seconds > _STATS["max_verify_s"]:
            _STATS["max_verify_s"] = seconds


def reward_stats(reset: bool = False) -> dict[str, Any]:
    """The reward's counters in this process (see ``_STATS_KEYS``), the most helpers busy at once, the
    longest verification (``max_verify_s``) and how many helpers are alive now."""
    with _STATS_LOCK:
        snapshot = dict(_STATS)
        if reset:
            for key in _STATS:
                _STATS[key] = 0.0 if key == "max_verify_s" else 0
    pool = _POOL
    snapshot["helpers_alive"] = pool.alive() if pool is not None else 0
    return snapshot


def _warn_once(key: str, message: str, *args: Any) -> None:
    with _STATS_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    logger.warning(message, *args)


def _note_status(status: str) -> None:
    """Count one finished answer; warn at the 1st, 10th, 100th, ... answer that could not be verified."""
    with _STATS_LOCK:
        _STATS["calls"] += 1
        if status == "fast":
            _STATS["fast_path"] += 1
        elif status in ("ok", "gold_unparsed"):
            _STATS["math_verify"] += 1
            if status == "gold_unparsed":
                _STATS["gold_unparsed"] += 1
        if status == "timeout":
            _STATS["timeouts"] += 1
        elif status == "invalid_ground_truth":
            _STATS["invalid_ground_truth"] += 1
        elif status == "error":
            _STATS["errors"] += 1
        n = 0
        if status in UNVERIFIED_STATUSES:
            _STATS["unverified"] += 1
            n = _STATS["unverified"]
        counts = dict(_STATS) if n else None
    if counts and str(n).rstrip("0") == "1":
        logger.warning(
            "minimal_rl.reward: %d answer(s) could not be verified and scored as wrong (this one: %s; so far "
            "%d timeouts over their budget, %d without a usable ground truth, %d helper failures, %d errors); "
            "see minimal_rl.reward.reward_stats()",
            n, status, counts["timeouts"], counts["invalid_ground_truth"], counts["helper_died"], counts["errors"],
        )


# --------------------------------------------------------------------------------------------
# Math-Verify, exactly as the released code calls it
# --------------------------------------------------------------------------------------------


class _Deadline(BaseException):
    """Raised by our timers; a BaseException so that Math-Verify's ``except Exception`` lets it through."""


class _MathVerify:
    """Math-Verify's public functions and the two configurations of the released code (lazy import)."""

    def __init__(self) -> None:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
        from math_verify.errors import TimeoutException
        from math_verify.utils import timeout

        self.parse, self.verify, self.timeout, self.TimeoutException = parse, verify, timeout, TimeoutException
        self.gold_targets = (LatexExtractionConfig(),)
        self.pred_targets = (ExprExtractionConfig(), LatexExtractionConfig())
        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_drop_disabled_timeout_notice)
        # The first LaTeX parse of a process builds the grammar's tables (about a second): do it now,
        # outside any item's time budget.
        # (No timers: this may run off the main thread, where Math-Verify's signal timeouts raise.)
        verify(parse("\\boxed{\\frac{1}{2}}", self.gold_targets, parsing_timeout=None),
               parse("$x = 0.5$", self.pred_targets, parsing_timeout=None), timeout_seconds=None)


def _drop_disabled_timeout_notice(record: logging.LogRecord) -> bool:
    # We run Math-Verify without its signal timeouts only where our own timer bounds it.
    return "Timeout is disabled" not in str(record.msg)


_MV: _MathVerify | None = None
_MV_LOCK = threading.Lock()


def _math_verify() -> _MathVerify:
    global _MV
    if _MV is None:
        with _MV_LOCK:
            if _MV is None:
                _MV = _MathVerify()
    return _MV


class _GoldCache:
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


_LOCAL_GOLD_CACHE = _GoldCache()


def math_verify_verdict(solution: str, ground_truths: Sequence[str], native_timeouts: bool = True,
                        cache: _GoldCache | None = None) -> tuple[bool, str]:
    """(correct, status) from Math-Verify as ``math_metric`` computes it, for any of ``ground_truths``.

    ``native_timeouts``: Math-Verify's own signal timeouts (main thread only); False runs it without them
    (the caller bounds the time). status: "ok", or "gold_unparsed" when no gold parses (wrong).
    """
    mv = _math_verify()
    timeouts = {} if native_timeouts else {"parsing_timeout": None}
    hook = _test_hook(solution)
    if hook is not None:
        hook()
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


# Test hooks: a response starting with this prefix makes the verifier sleep, hang or crash, but only when
# MINIMAL_RL_REWARD_TEST_HOOKS=1 is set (in the tests). Model output can never trigger them otherwise.
TEST_HOOK_PREFIX = "\x00minimal_rl_test:"


def _test_hook(solution: str):
    if not solution.startswith(TEST_HOOK_PREFIX) or os.environ.get("MINIMAL_RL_REWARD_TEST_HOOKS") != "1":
        return None
    command = solution[len(TEST_HOOK_PREFIX) :].split("\x00", 1)[0]
    kind, _, arg = command.partition("=")
    if kind == "sleep":
        return lambda: time.sleep(float(arg))
    if kind == "spin":  # CPU time in Python code, as a slow Math-Verify run spends it

        def spin() -> None:
            end = time.monotonic() + float(arg)
            while time.monotonic() < end:
                pass

        return spin
    if kind == "hang":  # uninterruptible by our timers: only the parent's kill ends it

        def hang() -> None:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM})
            time.sleep(float(arg))

        return hang
    if kind == "crash":
        return lambda: os._exit(3)
    return None


# --------------------------------------------------------------------------------------------
# In this process: main thread (SIGALRM), other threads (interrupting the verifying thread)
# --------------------------------------------------------------------------------------------

_ALARM_ARMED = False


def _on_alarm(signum: int, frame: Any) -> None:
    if _ALARM_ARMED:
        raise _Deadline()


def _main_thread_can_time() -> bool:
    return (
        threading.current_thread() is threading.main_thread()
        and hasattr(signal, "setitimer")
        and hasattr(signal, "SIGALRM")
    )


def _verify_on_main_thread(solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str]:
    """Math-Verify here, the whole item bounded by one SIGALRM timer (Math-Verify's own timers off)."""
    if timeout_s is None:
        return math_verify_verdict(solution, golds, native_timeouts=True, cache=_LOCAL_GOLD_CACHE)
    _math_verify()  # import outside the timed part
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, 0)
    started = time.monotonic()
    try:
        return _alarm_bounded(solution, golds, timeout_s)
    finally:
        _note_duration(time.monotonic() - started)
        signal.signal(signal.SIGALRM, old_handler if old_handler is not None else signal.SIG_DFL)
        if old_delay > 0:  # someone else's timer: give it back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - started), 1e-3), old_interval)


def _alarm_bounded(solution: str, golds: list[str], timeout_s: float) -> tuple[bool, str]:
    global _ALARM_ARMED
    try:
        try:
            _ALARM_ARMED = True
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            return math_verify_verdict(solution, golds, native_timeouts=False, cache=_LOCAL_GOLD_CACHE)
        finally:
            _ALARM_ARMED = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Deadline:
        return False, "timeout"


def _async_raise_available() -> bool:
    try:
        import ctypes

        return hasattr(ctypes, "pythonapi") and hasattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc")
    except Exception:
        return False


_ASYNC_RAISE = _async_raise_available()


def _verify_in_bounded_thread(solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str]:
    """Fallback off the main thread: Math-Verify in a thread of this process, interrupted on time with an
    asynchronous exception (works for Python code, which is where Math-Verify spends its time; C code such
    as one huge regex run is not interrupted, the caller still returns on time)."""
    if not _ASYNC_RAISE or timeout_s is None:
        _count("unbounded")
        _warn_once(
            "unbounded",
            "minimal_rl.reward: verifying WITHOUT a time limit (%s): a pathological answer can stall this thread. "
            "Fix: let helper processes start (see the warning above) or call from the main thread.",
            "timeout_s=None" if timeout_s is None else "no helper process and no way to interrupt a thread here",
        )
        return math_verify_verdict(solution, golds, native_timeouts=False, cache=_LOCAL_GOLD_CACHE)
    import ctypes

    _math_verify()
    box: dict[str, tuple[bool, str]] = {}

    def run() -> None:
        try:
            box["result"] = math_verify_verdict(solution, golds, native_timeouts=False, cache=_LOCAL_GOLD_CACHE)
        except _Deadline:
            box["result"] = (False, "timeout")
        except BaseException:  # noqa: BLE001 - anything at all: wrong, counted
            box["result"] = (False, "error")

    worker = threading.Thread(target=run, name="minimal_rl-reward-verify", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_Deadline))
        worker.join(GRACE_S)
        return False, "timeout"
    return box.get("result", (False, "error"))


# --------------------------------------------------------------------------------------------
# Helper processes
# --------------------------------------------------------------------------------------------

_HEADER = struct.Struct("!I")
_EOF = object()


@dataclass
class _Exchange:
    """What one send/receive with a helper got: a reply frame, None (its deadline passed) or _EOF."""

    frame: Any = _EOF
# How a helper starts: a fresh interpreter that loads this file by path (a helper needs nothing else of the
# package), with the parent's sys.path, so it imports what the parent imports.
_BOOT = (
    "import sys, json; a = json.loads(sys.argv[1]); sys.path[:] = a['sys_path']; "
    "import importlib.util as u; s = u.spec_from_file_location(a['name'], a['file']); "
    "m = u.module_from_spec(s); sys.modules[a['name']] = m; s.loader.exec_module(m); m._helper_main(a)"
)


def _write_all_blocking(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact_blocking(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


_CURRENT_ITEM = -1  # the helper's item being verified (-1: none)
_EXPIRED_ITEM = -2  # the item whose wall-clock budget the clock thread found over
_CPU_TIMED_ITEM = -3  # the item the CPU-time timer is armed for


def _on_prof(signum: int, frame: Any) -> None:
    if _EXPIRED_ITEM == _CURRENT_ITEM:
        raise _Deadline()


def _on_vtalrm(signum: int, frame: Any) -> None:
    if _CPU_TIMED_ITEM == _CURRENT_ITEM:
        raise _Deadline()


class _WallClock(threading.Thread):
    """The helper's wall-clock budget: a thread that signals the main thread (SIGPROF) when the item's time
    is over. Math-Verify's own timeouts use SIGALRM / ITIMER_REAL, which this leaves alone. A C routine
    that keeps the GIL (sympy on huge integers) can hold this thread back; the CPU-time timer
    (ITIMER_VIRTUAL, delivered by the kernel) covers exactly that case, and the parent's kill the rest."""

    def __init__(self) -> None:
        super().__init__(name="minimal_rl-reward-budget", daemon=True)
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._item = -1
        self._main = threading.main_thread().ident

    def arm(self, item: int, seconds: float) -> None:
        with self._cond:
            self._deadline, self._item = time.monotonic() + seconds, item
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None

    def run(self) -> None:
        global _EXPIRED_ITEM
        while True:
            with self._cond:
                while self._deadline is None:
                    self._cond.wait()
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._deadline, item = None, self._item
            _EXPIRED_ITEM = item  # a late signal for an earlier item cannot hit a later one
            signal.pthread_kill(self._main, signal.SIGPROF)


def _helper_main(args: dict) -> None:
    """The helper process: Math-Verify with its own timeouts on its main thread, as math_metric runs it,
    the whole item bounded by its budget in wall-clock time (`_WallClock`) and in CPU time (ITIMER_VIRTUAL)."""
    global _CURRENT_ITEM, _CPU_TIMED_ITEM
    rfd, wfd, parent = args["rfd"], args["wfd"], args["ppid"]
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # the parent counts timeouts
    try:
        _math_verify()
        ready = ("ready", os.getpid(), "")
    except BaseException as exc:  # noqa: BLE001
        ready = ("failed", os.getpid(), f"{type(exc).__name__}: {exc}")
    _write_all_blocking(wfd, _frame(pickle.dumps(ready)))
    if ready[0] != "ready":
        return

    def watch_parent() -> None:  # exit if the parent dies while we are busy on a long item
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    signal.signal(signal.SIGPROF, _on_prof)
    signal.signal(signal.SIGVTALRM, _on_vtalrm)
    clock = _WallClock()
    clock.start()
    cache = _GoldCache()
    while True:
        header = _read_exact_blocking(rfd, _HEADER.size)
        if header is None:
            return
        body = _read_exact_blocking(rfd, _HEADER.unpack(header)[0])
        if body is None:
            return
        rid, solution, golds, budget = pickle.loads(body)
        try:
            try:
                _CURRENT_ITEM = rid
                if budget is not None:
                    clock.arm(rid, budget)
                    _CPU_TIMED_ITEM = rid
                    signal.setitimer(signal.ITIMER_VIRTUAL, budget)
                verdict, status = math_verify_verdict(solution, golds, native_timeouts=True, cache=cache)
            finally:
                _CURRENT_ITEM = -1
                clock.disarm()
                signal.setitimer(signal.ITIMER_VIRTUAL, 0)
                _CPU_TIMED_ITEM = -3
        except _Deadline:
            verdict, status = False, "timeout"
        except Exception:  # noqa: BLE001
            verdict, status = False, "error"
        _write_all_blocking(wfd, _frame(pickle.dumps((rid, verdict, status))))


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


class _Helper:
    """One helper process and its two pipes (ours non-blocking)."""

    def __init__(self, proc: subprocess.Popen, wfd: int, rfd: int) -> None:
        self.proc, self.wfd, self.rfd, self.pid = proc, wfd, rfd, proc.pid
        self.busy_since: float | None = None
        self.overflow = False
        self.golds: OrderedDict[str, None] = OrderedDict()  # what it has parsed (its cache, approximately)
        self._buf = bytearray()
        os.set_blocking(wfd, False)
        os.set_blocking(rfd, False)

    def _pop_frame(self) -> bytes | None:
        if len(self._buf) < _HEADER.size:
            return None
        n = _HEADER.unpack_from(self._buf)[0]
        if len(self._buf) < _HEADER.size + n:
            return None
        frame = bytes(self._buf[_HEADER.size : _HEADER.size + n])
        del self._buf[: _HEADER.size + n]
        return frame

    def _read_available(self) -> bool:
        """Read what is there; False at end of file (the helper is gone)."""
        try:
            while True:
                chunk = os.read(self.rfd, 1 << 16)
                if not chunk:
                    return False
                self._buf += chunk
                if len(chunk) < 1 << 16:
                    return True
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _buffered_or_time_left(self, deadline: float) -> tuple[Any, float]:
        """A frame already read (and 0), or None and the seconds left before ``deadline``."""
        frame = self._pop_frame()
        return (frame, 0.0) if frame is not None else (None, deadline - time.monotonic())

    def recv(self, deadline: float) -> Any:
        """A frame, None when the deadline passed, or _EOF."""
        poller = None
        while True:
            frame, remaining = self._buffered_or_time_left(deadline)
            if frame is not None or remaining <= 0:
                return frame
            if poller is None:
                poller = select.poll()
                poller.register(self.rfd, select.POLLIN)
            if poller.poll(max(1, math.ceil(remaining * 1000))) and not self._read_available():
                return _EOF

    def _write_some(self, view: memoryview, deadline: float) -> tuple[memoryview, float | None]:
        """Write what the pipe takes now: the rest of ``view`` and, when the pipe was full, the seconds left
        before ``deadline`` to wait for it (TimeoutError when none are left)."""
        try:
            return view[os.write(self.wfd, view) :], None
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("helper not reading") from None
            return view, remaining

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(_frame(data))
        poller = None
        while view:
            view, remaining = self._write_some(view, deadline)
            if remaining is not None:
                if poller is None:
                    poller = select.poll()
                    poller.register(self.wfd, select.POLLOUT)
                poller.poll(max(1, math.ceil(remaining * 1000)))

    async def recv_async(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Any:
        while True:
            frame, remaining = self._buffered_or_time_left(deadline)
            if frame is not None or remaining <= 0:
                return frame
            ready = loop.create_future()
            loop.add_reader(self.rfd, _resolve, ready)
            try:
                await asyncio.wait_for(ready, remaining)
            except asyncio.TimeoutError:
                return None
            finally:
                loop.remove_reader(self.rfd)
            if not self._read_available():
                return _EOF

    async def send_async(self, loop: asyncio.AbstractEventLoop, data: bytes, deadline: float) -> None:
        view = memoryview(_frame(data))
        while view:
            view, remaining = self._write_some(view, deadline)
            if remaining is None:
                continue
            ready = loop.create_future()
            loop.add_writer(self.wfd, _resolve, ready)
            try:
                await asyncio.wait_for(ready, remaining)
            except asyncio.TimeoutError:
                raise TimeoutError("helper not reading") from None
            finally:
                loop.remove_writer(self.wfd)

    def close(self, kill: bool) -> None:
        """Kill (overrun, dead) or let go (retire: it exits when its request pipe closes)."""
        if kill:
            try:
                self.proc.kill()
            except OSError:
                pass
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        threading.Thread(target=_reap, args=(self.proc,), daemon=True).start()


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except Exception:  # noqa: BLE001
        pass


def _start_helper() -> _Helper:
    """Start one helper and wait until it has imported Math-Verify; raises with the cause otherwise."""
    python = os.environ.get("MINIMAL_RL_REWARD_PYTHON") or sys.executable
    if not python:
        raise RuntimeError("sys.executable is empty (an embedded interpreter?)")
    req_r, req_w = os.pipe()
    res_r, res_w = os.pipe()
    args = {
        "name": "_minimal_rl_reward_helper", "file": os.path.abspath(__file__), "sys_path": list(sys.path),
        "rfd": req_r, "wfd": res_w, "ppid": os.getpid(),
    }
    try:
        proc = subprocess.Popen(
            [python, "-c", _BOOT, json.dumps(args)],
            pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True,
        )
    except BaseException:
        for fd in (req_w, res_r):
            os.close(fd)
        raise
    finally:
        os.close(req_r)
        os.close(res_w)
    helper = _Helper(proc, req_w, res_r)
    frame = helper.recv(time.monotonic() + HELPER_START_TIMEOUT_S)
    if frame is None or frame is _EOF:
        helper.close(kill=True)
        code = proc.poll()
        raise RuntimeError(
            f"{python} did not start a helper within {HELPER_START_TIMEOUT_S:.0f} s" if frame is None
            else f"the helper ({python}) exited with code {code} before it was ready"
        )
    kind, _, detail = pickle.loads(frame)
    if kind != "ready":
        helper.close(kill=True)
        raise RuntimeError(f"the helper ({python}) could not import Math-Verify: {detail}")
    return helper


class _Waiter:
    """A caller waiting for a helper: a thread (event) or a coroutine (future on its loop). ``done`` and
    ``helper`` change under the pool's lock only."""

    __slots__ = ("loop", "event", "future", "done", "helper", "gold")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, gold: str | None = None) -> None:
        self.loop = loop
        self.gold = gold
        self.event = threading.Event() if loop is None else None
        self.future = loop.create_future() if loop is not None else None
        self.done = False
        self.helper: _Helper | None = None

    def assign(self, helper: _Helper | None) -> bool:
        """Under the pool lock: hand over a helper (None: the pool is unavailable)."""
        if self.done:
            return False
        self.done, self.helper = True, helper  # before the wake-up: the woken caller reads .helper at once
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(_resolve, self.future)
            except RuntimeError:  # its loop is closed: nobody is waiting any more
                self.helper = None
                return False
        else:
            self.event.set()
        return True


def default_pool_size() -> int:
    """Helpers per process by default: the CPUs this process may run on (at most 32)."""
    env = os.environ.get("MINIMAL_RL_REWARD_POOL_SIZE")
    if env:
        return max(1, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 32))


class HelperPool:
    """Helper processes shared by every thread and event loop of this process.

    No lock is held across a verification: a caller takes an idle helper (or waits for one), talks to it
    alone, and gives it back. Helpers start lazily as concurrent demand needs them, up to ``size``; a
    caller that waits while every helper is stuck on a slow item starts one more, up to ``max_size``.
    """

    def __init__(self, size: int, max_size: int | None = None) -> None:
        self.size = max(1, int(size))
        self.max_size = max(self.size, int(max_size) if max_size else 2 * self.size)
        self._lock = threading.Lock()
        self._idle: list[_Helper] = []
        self._busy: set[_Helper] = set()
        self._starting = 0
        self._waiters: deque[_Waiter] = deque()
        self._waiting = 0  # waiters not yet served or given up
        self._unavailable: str | None = None
        self._retry_at = 0.0
        self._failed_at = -1e9
        self._ids = itertools.count()
        self._closed = False
        self._monitor: threading.Thread | None = None
        self._monitor_wake = threading.Condition(self._lock)

    # ---- bookkeeping (under the lock)
    def alive(self) -> int:
        """Helpers whose process is running (one that died idle is replaced when next picked)."""
        with self._lock:
            return sum(h.proc.poll() is None for h in itertools.chain(self._idle, self._busy))

    def _live(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def _grow_if_needed(self) -> None:
        if self._closed or self._unavailable is not None or time.monotonic() - self._failed_at < 5.0:
            return
        live = self._live()
        if self._waiting > self._starting and live < self.size:
            self._spawn()
        elif (self._waiting and not self._idle and not self._starting and live < self.max_size and self._busy
              and time.monotonic() - max(h.busy_since or time.monotonic() for h in self._busy) > OVERFLOW_AFTER_S):
            self._spawn(overflow=True)

    def _watch(self) -> None:
        """One thread per pool, awake only while callers wait: starts an overflow helper when every helper
        has been stuck on one item for OVERFLOW_AFTER_S."""
        with self._lock:
            while not self._closed:
                if self._waiting:
                    self._grow_if_needed()
                    self._monitor_wake.wait(0.2)
                else:
                    self._monitor_wake.wait()

    def _add_waiter(self, waiter: _Waiter) -> None:
        self._waiters.append(waiter)
        self._waiting += 1
        self._grow_if_needed()
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._watch, name="minimal_rl-reward-pool", daemon=True)
            self._monitor.start()
        self._monitor_wake.notify()

    def _assign(self, waiter: _Waiter, helper: _Helper | None) -> bool:
        if waiter.done:  # gave up already (and was counted out then)
            return False
        self._waiting -= 1  # done after this, served or not (a closed event loop)
        return waiter.assign(helper)

    def _give_up(self, waiter: _Waiter) -> _Helper | None:
        """A waiter leaves (cancelled): None, or the helper it was handed meanwhile."""
        with self._lock:
            if not waiter.done:
                waiter.done = True
                self._waiting -= 1
                return None
            return waiter.helper

    def _spawn(self, overflow: bool = False) -> None:
        self._starting += 1
        threading.Thread(target=self._start_one, args=(overflow,), name="minimal_rl-reward-helper-start",
                         daemon=True).start()

    def _start_one(self, overflow: bool) -> None:
        try:
            helper = _start_helper()
        except Exception as exc:  # noqa: BLE001
            _count("helper_start_failures")
            with self._lock:
                self._starting -= 1
                self._failed_at = time.monotonic()
                if self._idle or self._busy or self._starting:
                    logger.warning("minimal_rl.reward: could not start an extra helper process: %s", exc)
                    return
                self._unavailable = f"{type(exc).__name__}: {exc}"
                self._retry_at = time.monotonic() + 60.0
                waiters, self._waiters = list(self._waiters), deque()
                for waiter in waiters:
                    self._assign(waiter, None)
            return
        _count("helpers_started")
        helper.overflow = overflow
        with self._lock:
            self._starting -= 1
            self._unavailable = None
            if self._closed:
                helper.close(kill=True)
                return
            self._hand_over(helper)

    def _hand_over(self, helper: _Helper) -> None:
        # Prefer a caller among the next few whose gold this helper has parsed already (the responses of one
        # prompt arrive together), else the one waiting longest.
        for i in range(min(len(self._waiters), AFFINITY_WINDOW)):
            waiter = self._waiters[i]
            if not waiter.done and waiter.gold in helper.golds:
                del self._waiters[i]
                if self._assign(waiter, helper):
                    self._mark_busy(helper)
                    return
                break
        while self._waiters:
            waiter = self._waiters.popleft()
            if self._assign(waiter, helper):
                self._mark_busy(helper)
                return
        if self._live() >= self.max_size:
            helper.close(kill=False)  # the pool shrank (configure)
            return
        helper.busy_since = None
        self._idle.append(helper)

    def _mark_busy(self, helper: _Helper) -> None:
        helper.busy_since = time.monotonic()
        self._busy.add(helper)
        busy = len(self._busy)
        with _STATS_LOCK:
            if busy > _STATS["peak_busy_helpers"]:
                _STATS["peak_busy_helpers"] = busy

    def unavailable_cause(self) -> str | None:
        with self._lock:
            if self._unavailable is not None and time.monotonic() >= self._retry_at:
                self._unavailable = None  # try again
            return self._unavailable

    # ---- taking and giving back
    def _take_or_wait(self, waiter: _Waiter) -> _Helper | None | _Waiter:
        with self._lock:
            if self._unavailable is not None and time.monotonic() >= self._retry_at:
                self._unavailable = None
            if self._unavailable is not None or self._closed:
                return None
            if self._idle:
                index = next((i for i, h in enumerate(self._idle) if waiter.gold in h.golds), -1)
                helper = self._idle.pop(index)
                self._mark_busy(helper)
                return helper
            self._add_waiter(waiter)
            return waiter

    def acquire(self, gold: str | None = None) -> _Helper | None:
        """An exclusive helper (preferably one that has parsed ``gold``), or None when helpers cannot start."""
        waiter = _Waiter(gold=gold)
        got = self._take_or_wait(waiter)
        if got is not waiter:
            return got
        with self._until_served(waiter):
            waiter.event.wait()
        return waiter.helper

    async def acquire_async(self, gold: str | None = None) -> _Helper | None:
        waiter = _Waiter(asyncio.get_running_loop(), gold)
        got = self._take_or_wait(waiter)
        if got is not waiter:
            return got
        with self._until_served(waiter):
            await waiter.future
        return waiter.helper

    @contextlib.contextmanager
    def _until_served(self, waiter: _Waiter):
        """Interrupted while waiting (Ctrl-C, a cancelled await): give the place in the queue up, and hand back a
        helper that was assigned meanwhile."""
        try:
            yield
        except BaseException:
            helper = self._give_up(waiter)
            if helper is not None:
                self.release(helper)
            raise

    def release(self, helper: _Helper) -> None:
        with self._lock:
            self._busy.discard(helper)
            if self._closed:
                helper.close(kill=False)
                return
            self._hand_over(helper)

    def discard(self, helper: _Helper) -> None:
        """Kill a helper that overran or died; start a replacement in the background."""
        _count("helpers_replaced")
        with self._lock:
            self._busy.discard(helper)
            helper.close(kill=True)
            if not self._closed and self._live() < self.size:
                self._spawn()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            waiters, self._waiters = list(self._waiters), deque()
            for waiter in waiters:
                self._assign(waiter, None)
            self._monitor_wake.notify_all()
        for helper in idle:
            helper.close(kill=False)

    def warm_up(self, n: int | None = None, timeout_s: float = HELPER_START_TIMEOUT_S) -> int:
        """Start helpers now (default: ``size``) and wait until they are ready; returns how many are alive."""
        n = self.size if n is None else min(int(n), self.max_size)
        with self._lock:
            for _ in range(max(0, n - self._live())):
                self._spawn()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._starting == 0:
                    break
            time.sleep(0.02)
        return self.alive()

    # ---- one verification
    def _request(self, helper: _Helper, solution: str, golds: list[str], timeout_s: float | None) -> tuple[int, bytes, float]:
        for gold in golds:
            helper.golds[gold] = None
            helper.golds.move_to_end(gold)
        while len(helper.golds) > 4096:
            helper.golds.popitem(last=False)
        rid = next(self._ids)
        limit = (NO_TIMEOUT_HARD_LIMIT_S if timeout_s is None else timeout_s) + GRACE_S
        return rid, pickle.dumps((rid, solution, golds, timeout_s), protocol=pickle.HIGHEST_PROTOCOL), limit

    def _outcome(self, helper: _Helper, rid: int, frame: Any) -> tuple[bool, str] | None:
        """The verdict, or None when the helper died (the caller retries once)."""
        if frame is None:
            self.discard(helper)
            return False, "timeout"
        if frame is _EOF:
            _count("helper_died")
            self.discard(helper)
            return None
        try:
            got_rid, verdict, status = pickle.loads(frame)
        except Exception:  # noqa: BLE001 - cannot happen; be safe
            got_rid = verdict = status = None
        if got_rid != rid:  # cannot happen either: one caller per helper
            self.discard(helper)
            return False, "error"
        self.release(helper)
        return bool(verdict), status

    def _found_dead(self, helper: _Helper) -> bool:
        """A helper that exited while idle (killed from outside, OOM): replaced, not the item's fault."""
        if helper.proc.poll() is None:
            return False
        self.discard(helper)
        return True

    def _protocol(self, solution: str, golds: list[str], timeout_s: float | None):
        """One item's exchange with the pool, written once for the sync and the async caller: a generator that
        yields ``("acquire", gold)`` and ``("exchange", helper, data, deadline)`` and is sent their results
        (a helper or None; the reply frame or _EOF). Returns (verdict, status), or None when helpers cannot
        start (use the fallback). An item whose helper dies under it is retried once on another."""
        attempts = 0
        while attempts < 2:
            helper = yield ("acquire", golds[0] if golds else None)
            if helper is None:
                return None
            if self._found_dead(helper):
                continue
            attempts += 1
            rid, data, limit = self._request(helper, solution, golds, timeout_s)
            started = time.monotonic()
            frame = yield ("exchange", helper, data, started + limit)
            if frame is not _EOF:
                _note_duration(time.monotonic() - started)
            outcome = self._outcome(helper, rid, frame)
            if outcome is not None:
                return outcome
        return False, "helper_died"

    @contextlib.contextmanager
    def _exchanging(self, helper: _Helper):
        """Around one send/receive: yields a holder whose ``frame`` stays _EOF when the pipe broke or the helper
        stopped reading; a helper interrupted mid-exchange (e.g. a cancelled await) may still answer later, so
        it is discarded."""
        result = _Exchange()
        try:
            yield result
        except (OSError, TimeoutError):
            pass
        except BaseException:
            self.discard(helper)
            raise

    def _exchange(self, helper: _Helper, data: bytes, deadline: float) -> Any:
        with self._exchanging(helper) as result:
            helper.send(data, deadline)
            result.frame = helper.recv(deadline)
        return result.frame

    async def _exchange_async(self, loop: asyncio.AbstractEventLoop, helper: _Helper, data: bytes, deadline: float) -> Any:
        with self._exchanging(helper) as result:
            await helper.send_async(loop, data, deadline)
            result.frame = await helper.recv_async(loop, deadline)
        return result.frame

    def verify(self, solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str] | None:
        steps = self._protocol(solution, golds, timeout_s)
        handlers = {"acquire": self.acquire, "exchange": self._exchange}
        reply = None
        while True:
            try:
                kind, *args = steps.send(reply)
            except StopIteration as done:
                return done.value
            reply = handlers[kind](*args)

    async def verify_async(self, solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str] | None:
        loop = asyncio.get_running_loop()
        steps = self._protocol(solution, golds, timeout_s)
        handlers = {"acquire": self.acquire_async, "exchange": functools.partial(self._exchange_async, loop)}
        kind, *args = next(steps)
        while True:
            answer = await handlers[kind](*args)
            try:
                kind, *args = steps.send(answer)
            except StopIteration as done:
                return done.value


_POOL: HelperPool | None = None
_POOL_LOCK = threading.Lock()
_CONFIG: dict[str, Any] = {"pool_size": None, "max_pool_size": None, "fast_path": True}


def configure(pool_size: int | None = None, max_pool_size: int | None = None, fast_path: bool = True) -> None:
    """Set the helper pool's size (default: `default_pool_size`) and its overflow limit (default 2x), which
    apply to the running pool too (helpers above the limit retire as they finish); ``fast_path=False`` sends every
    answer to Math-Verify (same verdicts, slower: for measuring what `fast_verdict` saves)."""
    with _POOL_LOCK:
        _CONFIG["pool_size"], _CONFIG["max_pool_size"], _CONFIG["fast_path"] = pool_size, max_pool_size, bool(fast_path)
        if _POOL is not None:
            _POOL.size = max(1, int(pool_size or default_pool_size()))
            _POOL.max_size = max(_POOL.size, int(max_pool_size) if max_pool_size else 2 * _POOL.size)


def get_pool(pool_size: int | None = None) -> HelperPool:
    """This process's helper pool (created on first use; ``pool_size`` only matters then)."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                size = pool_size or _CONFIG["pool_size"] or default_pool_size()
                _POOL = HelperPool(size, _CONFIG["max_pool_size"])
    return _POOL


def warm_up(n: int | None = None) -> int:
    """Start the helper processes now rather than on the first answer that needs one."""
    return get_pool().warm_up(n)


def shutdown() -> None:
    """Stop this process's helpers (also done at exit); the next verification starts new ones."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def _forget_pool_after_fork() -> None:
    # A forked child must not talk to its parent's helpers (it starts its own when it needs them), nor keep
    # their pipes open; locks another thread held at the fork are replaced.
    global _POOL, _POOL_LOCK, _STATS_LOCK, _MV_LOCK, _BATCH_EXECUTOR, _BATCH_EXECUTOR_LOCK
    pool = _POOL
    if pool is not None:
        for helper in list(pool._idle) + list(pool._busy):
            for fd in (helper.wfd, helper.rfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
    _POOL, _POOL_LOCK, _STATS_LOCK, _MV_LOCK = None, threading.Lock(), threading.Lock(), threading.Lock()
    _BATCH_EXECUTOR, _BATCH_EXECUTOR_LOCK = None, threading.Lock()
    _LOCAL_GOLD_CACHE._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)
atexit.register(shutdown)

# --------------------------------------------------------------------------------------------
# Routing: where each answer is verified
# --------------------------------------------------------------------------------------------


def _fallback(solution: str, golds: list[str], timeout_s: float | None, cause: str) -> tuple[bool, str]:
    _count("fallback_in_process")
    bounded = _main_thread_can_time() or (_ASYNC_RAISE and timeout_s is not None)
    _warn_once(
        "fallback",
        "minimal_rl.reward: cannot start Math-Verify helper processes (%s); verifying in this process instead "
        "(one at a time, %s). Fix: check that `%s -c 'import math_verify'` works (pip install 'minimal-rl[math]'), "
        "or set MINIMAL_RL_REWARD_PYTHON to an interpreter that has math-verify.",
        cause, "time-bounded" if bounded else "WITHOUT a time limit",
        os.environ.get("MINIMAL_RL_REWARD_PYTHON") or sys.executable,
    )
    if _main_thread_can_time():
        return _verify_on_main_thread(solution, golds, timeout_s)
    return _verify_in_bounded_thread(solution, golds, timeout_s)


def _failed(exc: Exception) -> tuple[bool, str]:
    """An exception around Math-Verify: wrong, counted, and said once (a training step must not die of it)."""
    if isinstance(exc, ImportError):
        _warn_once(
            "import",
            "minimal_rl.reward: Math-Verify is not installed (%s): nothing can be verified, every answer scores "
            "as wrong and is counted as unverified. Fix: pip install 'minimal-rl[math]'.", exc,
        )
        return False, "unavailable"
    _warn_once("error", "minimal_rl.reward: unexpected error while verifying (%s: %s); scored as wrong",
               type(exc).__name__, exc)
    return False, "error"


def _guarded(fn, *args) -> tuple[bool, str]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        return _failed(exc)


def _verify_sync(solution: str, golds: list[str], timeout_s: float | None, pool_size: int | None) -> tuple[bool, str]:
    if _main_thread_can_time():
        return _guarded(_verify_on_main_thread, solution, golds, timeout_s)
    pool = get_pool(pool_size)
    result = _guarded(pool.verify, solution, golds, timeout_s)
    if result is None:
        return _guarded(_fallback, solution, golds, timeout_s, pool.unavailable_cause() or "unknown cause")
    return result


async def _verify_async(solution: str, golds: list[str], timeout_s: float | None, pool_size: int | None) -> tuple[bool, str]:
    pool = get_pool(pool_size)
    try:
        result = await pool.verify_async(solution, golds, timeout_s)
    except NotImplementedError:  # an event loop without add_reader: verify from a thread instead
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _verify_sync, solution, golds, timeout_s, pool_size)
    except Exception as exc:  # noqa: BLE001
        return _failed(exc)
    if result is None:
        cause = pool.unavailable_cause() or "unknown cause"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _guarded, _fallback, solution, golds, timeout_s, cause)
    return result


class _Item:
    """One answer to score: normalised inputs, and the verdict once known."""

    __slots__ = ("text", "golds", "verdict", "status")

    def __init__(self, solution: Any, ground_truth: Any) -> None:
        self.text = completion_text(solution)
        answers = ground_truth_answers(ground_truth)
        self.golds: list[str] = []
        self.verdict: bool | None = None
        self.status = "fast"
        if not answers:
            self.verdict, self.status = False, "invalid_ground_truth"
            _warn_once(
                "ground_truth",
                "minimal_rl.reward: a ground truth is missing (%r): scored as wrong and counted as unverified. "
                "Fix the data (prepare-data drops such rows).", ground_truth if not isinstance(ground_truth, str) else "",
            )
            return
        for answer in answers:
            verdict = fast_verdict(self.text, answer) if _CONFIG["fast_path"] else None
            if verdict is True:
                self.verdict = True
                self.golds = []
                return
            if verdict is None:
                self.golds.append(answer)
        if not self.golds:
            self.verdict = False

    def finish(self, verdict: bool, status: str) -> None:
        self.verdict, self.status = bool(verdict), status


def _check_options(score_mapping: str, timeout_s: Any) -> float | None:
    if score_mapping not in SCORE_MAPPINGS:
        raise ValueError(f"score_mapping must be one of {SCORE_MAPPINGS}, got {score_mapping!r}")
    if timeout_s is None:
        return None
    timeout_s = float(timeout_s)
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive or None, got {timeout_s!r}")
    return timeout_s


def score_from_correct(correct: bool, score_mapping: str = "signed") -> float:
    """+1 / -1 (``signed``, the paper) or 1 / 0 (``binary``)."""
    if score_mapping == "signed":
        return 1.0 if correct else -1.0
    if score_mapping == "binary":
        return 1.0 if correct else 0.0
    raise ValueError(f"score_mapping must be one of {SCORE_MAPPINGS}, got {score_mapping!r}")


def _result(item: _Item, score_mapping: str, report_unverified: bool) -> dict[str, float]:
    _note_status(item.status)
    out = {"score": score_from_correct(bool(item.verdict), score_mapping), "acc": float(bool(item.verdict))}
    if report_unverified:
        out["unverified"] = float(item.status in UNVERIFIED_STATUSES)
    return out


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CallOptions:
    """The reward's options (verl's ``reward_kwargs``), checked once per call."""

    score_mapping: str = "signed"
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    report_unverified: bool = False
    pool_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout_s", _check_options(self.score_mapping, self.timeout_s))


def _options(score_mapping: str = "signed", timeout_s: float | None = DEFAULT_TIMEOUT_S, report_unverified: bool = False,
             pool_size: int | None = None, **ignored: Any) -> _CallOptions:
    # anything else verl passes along (its own keyword arguments) is ignored, as its reward functions do
    return _CallOptions(score_mapping, timeout_s, report_unverified, pool_size)


def compute_score(data_source: Any = None, solution_str: Any = "", ground_truth: Any = "", extra_info: Any = None,
                  **options: Any) -> dict[str, float]:
    """verl custom reward function: ``{"score": +1 | -1, "acc": 1 | 0}`` for one response.

    ``reward.custom_reward_function.path=pkg://minimal_rl.reward``, ``name=compute_score``; options through
    ``reward_kwargs``: ``score_mapping`` (signed / binary), ``timeout_s`` (default 5 s, None: no bound),
    ``report_unverified`` (adds ``"unverified"``), ``pool_size`` (helpers in this process). Never raises on
    model output or data.
    """
    opts = _options(**options)
    item = _Item(solution_str, ground_truth)
    if item.verdict is None:
        item.finish(*_verify_sync(item.text, item.golds, opts.timeout_s, opts.pool_size))
    return _result(item, opts.score_mapping, opts.report_unverified)


async def compute_score_async(data_source: Any = None, solution_str: Any = "", ground_truth: Any = "",
                              extra_info: Any = None, **options: Any) -> dict[str, float]:
    """`compute_score` as a coroutine (same options), which verl 0.9's reward managers await on their event loop
    (``inspect.iscoroutinefunction``): the fast path inline, Math-Verify in the helper pool, no thread per call.
    ``name=compute_score_async``."""
    opts = _options(**options)
    item = _Item(solution_str, ground_truth)
    if item.verdict is None:
        item.finish(*await _verify_async(item.text, item.golds, opts.timeout_s, opts.pool_size))
    return _result(item, opts.score_mapping, opts.report_unverified)


def is_correct(solution: Any, ground_truth: Any, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> bool:
    """True iff Math-Verify (as the paper calls it) accepts ``solution`` for ``ground_truth``.

    Never raises on model output or data: garbage, empty strings and timeouts are wrong answers.
    """
    timeout_s = _check_options("signed", timeout_s)
    item = _Item(solution, ground_truth)
    if item.verdict is None:
        item.finish(*_verify_sync(item.text, item.golds, timeout_s, None))
    _note_status(item.status)
    return bool(item.verdict)


_BATCH_EXECUTOR: Any = None
_BATCH_EXECUTOR_SIZE = 0
_BATCH_EXECUTOR_LOCK = threading.Lock()


def _batch_executor(workers: int):
    """Threads that wait on helpers for a batch (they spend their time in poll, not holding the GIL)."""
    global _BATCH_EXECUTOR, _BATCH_EXECUTOR_SIZE
    with _BATCH_EXECUTOR_LOCK:
        if _BATCH_EXECUTOR is None or _BATCH_EXECUTOR_SIZE < workers:
            from concurrent.futures import ThreadPoolExecutor

            _BATCH_EXECUTOR = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minimal_rl-reward")
            _BATCH_EXECUTOR_SIZE = workers
        return _BATCH_EXECUTOR


def verify_many(solutions: Iterable[Any], ground_truths: Iterable[Any], timeout_s: float | None = DEFAULT_TIMEOUT_S,
                pool_size: int | None = None) -> list[tuple[bool, str]]:
    """(correct, status) for each pair, the ones that need Math-Verify verified in parallel by the helper
    pool (a few are verified right here). status: "fast", "ok", "timeout", ... (see UNVERIFIED_STATUSES)."""
    items = [_Item(s, g) for s, g in zip(solutions, ground_truths)]
    pending = [item for item in items if item.verdict is None]
    if len(pending) <= 2 and _main_thread_can_time():
        for item in pending:
            item.finish(*_guarded(_verify_on_main_thread, item.text, item.golds, timeout_s))
    elif pending:
        pool = get_pool(pool_size)
        executor = _batch_executor(pool.max_size)
        results = list(executor.map(lambda it: _guarded(pool.verify, it.text, it.golds, timeout_s), pending))
        for item, result in zip(pending, results):
            if result is None:
                result = _guarded(_fallback, item.text, item.golds, timeout_s, pool.unavailable_cause() or "unknown cause")
            item.finish(*result)
    for item in items:
        _note_status(item.status)
    return [(bool(item.verdict), item.status) for item in items]


def math_verify_reward(
    completions: list[Any],
    answer: list[Any] | None = None,
    score_mapping: str = "signed",
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: one score per completion against the dataset's ``answer`` column.

    The completions that need Math-Verify are verified in parallel (helper processes); the same input rule
    as `compute_score` (chat messages, non-str completions, None / NaN / list answers). Never raises on them.
    """
    timeout_s = _check_options(score_mapping, timeout_s)
    completions = list(completions)
    answers = list(answer) if answer is not None else [None] * len(completions)
    if len(answers) < len(completions):
        answers += [None] * (len(completions) - len(answers))
    verdicts = verify_many(completions, answers, timeout_s)
    return [score_from_correct(correct, score_mapping) for correct, _ in verdicts]
