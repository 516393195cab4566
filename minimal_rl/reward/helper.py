"""The helper process: Math-Verify on its main thread, one item at a time, each bounded by its budget.

Started by `channel.start_helper` as ``python -c BOOT`` with the parent's ``sys.path`` (it imports this
package, not torch, and never the caller's ``__main__``). Requests and replies are pickled frames
(a 4-byte length, then the payload) over two pipes.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import threading
import time
from typing import Any

from minimal_rl.reward.verdict import Deadline, GoldCache, math_verify, math_verify_verdict

HEADER = struct.Struct("!I")
EOF = object()  # what a read gets when the other end is gone
# How a helper starts: a fresh interpreter with the parent's sys.path (so it imports what the parent
# imports) that runs `main` of this module; `minimal_rl`'s own __init__ imports nothing heavy.
BOOT = (
    "import sys, json; a = json.loads(sys.argv[1]); sys.path[:] = a['sys_path']; "
    "from minimal_rl.reward.helper import main; main(a)"
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
        raise Deadline()


def _on_vtalrm(signum: int, frame: Any) -> None:
    if _CPU_TIMED_ITEM == _CURRENT_ITEM:
        raise Deadline()


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
        self._idle = True  # waiting without a timeout: only arm() wakes it
        self._main = threading.main_thread().ident

    def arm(self, item: int, seconds: float) -> None:
        with self._cond:
            self._deadline, self._item = time.monotonic() + seconds, item
            # Woken only from an untimed wait. In a timed wait it wakes at an earlier item's deadline (items
            # run one after another, so that one is sooner) and waits on for this one: a stream of quick
            # items wakes it about once per budget, not once per item. Each wake-up takes the GIL from the
            # verifying thread, and on a loaded machine the hand-over waits for the scheduler.
            if self._idle:
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None

    def run(self) -> None:
        global _EXPIRED_ITEM
        while True:
            with self._cond:
                while self._deadline is None:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._deadline, item = None, self._item
            _EXPIRED_ITEM = item  # a late signal for an earlier item cannot hit a later one
            signal.pthread_kill(self._main, signal.SIGPROF)


def main(args: dict) -> None:
    """The helper process: Math-Verify with its own timeouts on its main thread, as math_metric runs it,
    the whole item bounded by its budget in wall-clock time (`_WallClock`) and in CPU time (ITIMER_VIRTUAL)."""
    global _CURRENT_ITEM, _CPU_TIMED_ITEM
    rfd, wfd, parent = args["rfd"], args["wfd"], args["ppid"]
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # the parent counts timeouts
    try:
        math_verify()
        ready = ("ready", os.getpid(), "")
    except BaseException as exc:  # noqa: BLE001
        ready = ("failed", os.getpid(), f"{type(exc).__name__}: {exc}")
    try:
        _write_all_blocking(wfd, frame(pickle.dumps(ready)))
    except BrokenPipeError:  # the parent exited while this helper started
        return
    if ready[0] != "ready":
        return

    def watch_parent() -> None:  # exit if the parent dies while we are busy on a long item
        while True:
            time.sleep(5.0)  # rarely: each wake-up takes the GIL (an idle helper sees EOF on its pipe anyway)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    signal.signal(signal.SIGPROF, _on_prof)
    signal.signal(signal.SIGVTALRM, _on_vtalrm)
    clock = _WallClock()
    clock.start()
    cache = GoldCache()
    while True:
        header = _read_exact_blocking(rfd, HEADER.size)
        if header is None:
            return
        body = _read_exact_blocking(rfd, HEADER.unpack(header)[0])
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
        except Deadline:
            verdict, status = False, "timeout"
        except Exception:  # noqa: BLE001
            verdict, status = False, "error"
        _write_all_blocking(wfd, frame(pickle.dumps((rid, verdict, status))))


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload

