"""Counters and loud failure: every answer that is not a completed Math-Verify verdict is counted and
warned about (the 1st, 10th, 100th, ...), never a silent -1."""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger("minimal_rl.reward")

# Statuses whose verdict is not a completed Math-Verify verdict.
UNVERIFIED_STATUSES = frozenset({"timeout", "helper_died", "unavailable", "invalid_ground_truth", "error"})

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


def count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        _STATS[key] += n


def note_duration(seconds: float) -> None:
    with _STATS_LOCK:
        if seconds > _STATS["max_verify_s"]:
            _STATS["max_verify_s"] = seconds


def snapshot(reset: bool = False) -> dict[str, Any]:
    """The counters (see ``_STATS_KEYS``), the most helpers busy at once and the longest verification."""
    with _STATS_LOCK:
        copy = dict(_STATS)
        if reset:
            for key in _STATS:
                _STATS[key] = 0.0 if key == "max_verify_s" else 0
    return copy


def note_busy(busy: int) -> None:
    with _STATS_LOCK:
        if busy > _STATS["peak_busy_helpers"]:
            _STATS["peak_busy_helpers"] = busy


def after_fork() -> None:
    """In a forked child: a lock another thread held at the fork is replaced."""
    global _STATS_LOCK
    _STATS_LOCK = threading.Lock()


def warn_once(key: str, message: str, *args: Any) -> None:
    with _STATS_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    logger.warning(message, *args)


def note_status(status: str) -> None:
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


