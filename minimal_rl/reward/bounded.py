"""The in-process bound: Math-Verify in this process under one timer per item.

On the main thread one ``SIGALRM`` timer bounds the whole item (Math-Verify's own timers off). Elsewhere,
only when no helper process can start: a thread interrupted on time with an asynchronous exception (Python
code only; the caller returns on time either way).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from minimal_rl.reward.stats import count, note_duration, warn_once
from minimal_rl.reward.verdict import LOCAL_GOLD_CACHE, Deadline, math_verify, math_verify_verdict

GRACE_S = 0.5  # after a budget, how long a verification may take to stop before it is given up (killed)

_ALARM_ARMED = False


def _on_alarm(signum: int, frame: Any) -> None:
    if _ALARM_ARMED:
        raise Deadline()


def main_thread_can_time() -> bool:
    return (
        threading.current_thread() is threading.main_thread()
        and hasattr(signal, "setitimer")
        and hasattr(signal, "SIGALRM")
    )


def verify_on_main_thread(solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str]:
    """Math-Verify here, the whole item bounded by one SIGALRM timer (Math-Verify's own timers off)."""
    if timeout_s is None:
        return math_verify_verdict(solution, golds, native_timeouts=True, cache=LOCAL_GOLD_CACHE)
    math_verify()  # import outside the timed part
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, 0)
    started = time.monotonic()
    try:
        return _alarm_bounded(solution, golds, timeout_s)
    finally:
        note_duration(time.monotonic() - started)
        signal.signal(signal.SIGALRM, old_handler if old_handler is not None else signal.SIG_DFL)
        if old_delay > 0:  # someone else's timer: give it back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - started), 1e-3), old_interval)


def _alarm_bounded(solution: str, golds: list[str], timeout_s: float) -> tuple[bool, str]:
    global _ALARM_ARMED
    try:
        try:
            _ALARM_ARMED = True
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            return math_verify_verdict(solution, golds, native_timeouts=False, cache=LOCAL_GOLD_CACHE)
        finally:
            _ALARM_ARMED = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Deadline:
        return False, "timeout"


def _async_raise_available() -> bool:
    try:
        import ctypes

        return hasattr(ctypes, "pythonapi") and hasattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc")
    except Exception:
        return False


ASYNC_RAISE = _async_raise_available()


def verify_in_bounded_thread(solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str]:
    """Fallback off the main thread: Math-Verify in a thread of this process, interrupted on time with an
    asynchronous exception (works for Python code, which is where Math-Verify spends its time; C code such
    as one huge regex run is not interrupted, the caller still returns on time)."""
    if not ASYNC_RAISE or timeout_s is None:
        count("unbounded")
        warn_once(
            "unbounded",
            "minimal_rl.reward: verifying WITHOUT a time limit (%s): a pathological answer can stall this thread. "
            "Fix: let helper processes start (see the warning above) or call from the main thread.",
            "timeout_s=None" if timeout_s is None else "no helper process and no way to interrupt a thread here",
        )
        return math_verify_verdict(solution, golds, native_timeouts=False, cache=LOCAL_GOLD_CACHE)
    import ctypes

    math_verify()
    box: dict[str, tuple[bool, str]] = {}

    def run() -> None:
        try:
            box["result"] = math_verify_verdict(solution, golds, native_timeouts=False, cache=LOCAL_GOLD_CACHE)
        except Deadline:
            box["result"] = (False, "timeout")
        except BaseException:  # noqa: BLE001 - anything at all: wrong, counted
            box["result"] = (False, "error")

    worker = threading.Thread(target=run, name="minimal_rl-reward-verify", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(Deadline))
        worker.join(GRACE_S)
        return False, "timeout"
    return box.get("result", (False, "error"))

