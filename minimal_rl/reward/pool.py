"""The helper pool: helper processes shared by every thread and event loop of this process.

No lock is held across a verification: a caller takes an idle helper (or waits for one), talks to it
alone (`channel.Helper`) and gives it back. A helper that overran its item's budget by ``GRACE_S`` is
killed and replaced in the background; an item whose helper died under it is retried once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import os
import pickle
import threading
import time
from collections import deque
from typing import Any

from minimal_rl.reward import stats
from minimal_rl.reward.bounded import GRACE_S
from minimal_rl.reward.channel import HELPER_START_TIMEOUT_S, Helper, Waiter, start_helper
from minimal_rl.reward.helper import EOF
from minimal_rl.reward.stats import count, logger, note_duration

NO_TIMEOUT_HARD_LIMIT_S = 600.0
# While callers wait and no helper has gone to a caller for this long (every helper is on a slow item), one
# more helper is started for each waiting caller (up to max_pool_size; they stay): a caller waits about
# OVERFLOW_AFTER_S plus a helper's start-up (~0.7 s) behind slow items, under one default budget (5 s).
# Math-Verify takes milliseconds on ordinary answers, so this fires only when all helpers are on slow ones.
OVERFLOW_AFTER_S = 2.0
# How many waiting callers a free helper looks through for one whose gold it has parsed already.
AFFINITY_WINDOW = 8

def default_pool_size() -> int:
    """Helpers per process by default: the CPUs this process may run on (at most 32)."""
    env = os.environ.get("MINIMAL_RL_REWARD_POOL_SIZE")
    if env:
        return max(1, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpucount() or 1
    return max(1, min(cpus, 32))


def default_max_size(size: int, max_size: int | None = None) -> int:
    """The overflow limit: ``max_size``, by default twice ``size`` and at least 8 (8 callers, as verl's
    executor threads, each stuck on a slow item still leave helpers for the rest)."""
    return max(size, int(max_size) if max_size else max(2 * size, 8))


class HelperPool:
    """Helper processes shared by every thread and event loop of this process.

    No lock is held across a verification: a caller takes an idle helper (or waits for one), talks to it
    alone, and gives it back. Helpers start lazily as concurrent demand needs them, up to ``size``; a
    caller that waits while every helper is on a slow item (the queue stopped) starts one more each, up to ``max_size``.
    """

    def __init__(self, size: int, max_size: int | None = None) -> None:
        self.size = max(1, int(size))
        self.max_size = default_max_size(self.size, max_size)
        self._lock = threading.Lock()
        self._idle: list[Helper] = []
        self._busy: set[Helper] = set()
        self._starting = 0
        self._waiters: deque[Waiter] = deque()
        self._waiting = 0  # waiters not yet served or given up
        self._unavailable: str | None = None
        self._retry_at = 0.0
        self._failed_at = -1e9
        self._last_handover = time.monotonic()  # when a helper last went to a caller (the queue moved)
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
        """Start helpers while callers wait: up to ``size`` as demand needs them. Beyond that (up to
        ``max_size``) only when the queue has stopped moving: no helper has handed over an item for
        OVERFLOW_AFTER_S, i.e. every one is on a slow item; then one for each waiting caller, so that none
        waits behind a queue of slow budgets. A queue that moves (one slow item, a long backlog) starts none:
        a helper's start costs ~0.7 s of CPU, which a short run would pay for nothing."""
        if self._closed or self._unavailable is not None or time.monotonic() - self._failed_at < 5.0:
            return
        if self._live() < self.size:
            while self._waiting > self._starting and self._live() < self.size:
                self._spawn()
        elif time.monotonic() - self._last_handover > OVERFLOW_AFTER_S:
            while self._waiting > self._starting and self._live() < self.max_size:
                self._spawn(overflow=True)

    def _watch(self) -> None:
        """One thread per pool, awake only while callers wait: starts overflow helpers when the queue stops."""
        with self._lock:
            while not self._closed:
                if self._waiting:
                    self._grow_if_needed()
                    self._monitor_wake.wait(0.2)
                else:
                    self._monitor_wake.wait()

    def _add_waiter(self, waiter: Waiter) -> None:
        self._waiters.append(waiter)
        self._waiting += 1
        self._grow_if_needed()
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._watch, name="minimal_rl-reward-pool", daemon=True)
            self._monitor.start()
        self._monitor_wake.notify()

    def _assign(self, waiter: Waiter, helper: Helper | None) -> bool:
        if waiter.done:  # gave up already (and was counted out then)
            return False
        self._waiting -= 1  # done after this, served or not (a closed event loop)
        return waiter.assign(helper)

    def _give_up(self, waiter: Waiter) -> Helper | None:
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
            helper = start_helper()
        except Exception as exc:  # noqa: BLE001
            count("helper_start_failures")
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
        count("helpers_started")
        helper.overflow = overflow
        with self._lock:
            self._starting -= 1
            self._unavailable = None
            if self._closed:
                helper.close(kill=True)
                return
            self._hand_over(helper)

    def _hand_over(self, helper: Helper) -> None:
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

    def _mark_busy(self, helper: Helper) -> None:
        helper.busy_since = self._last_handover = time.monotonic()
        self._busy.add(helper)
        stats.note_busy(len(self._busy))

    def unavailable_cause(self) -> str | None:
        with self._lock:
            if self._unavailable is not None and time.monotonic() >= self._retry_at:
                self._unavailable = None  # try again
            return self._unavailable

    # ---- taking and giving back
    def _take_or_wait(self, waiter: Waiter) -> Helper | None | Waiter:
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

    def acquire(self, gold: str | None = None) -> Helper | None:
        """An exclusive helper (preferably one that has parsed ``gold``), or None when helpers cannot start."""
        waiter = Waiter(gold=gold)
        got = self._take_or_wait(waiter)
        if got is not waiter:
            return got
        with self._until_served(waiter):
            waiter.event.wait()
        return waiter.helper

    async def acquire_async(self, gold: str | None = None) -> Helper | None:
        waiter = Waiter(asyncio.get_running_loop(), gold)
        got = self._take_or_wait(waiter)
        if got is not waiter:
            return got
        with self._until_served(waiter):
            await waiter.future
        return waiter.helper

    @contextlib.contextmanager
    def _until_served(self, waiter: Waiter):
        """Interrupted while waiting (Ctrl-C, a cancelled await): give the place in the queue up, and hand back a
        helper that was assigned meanwhile."""
        try:
            yield
        except BaseException:
            helper = self._give_up(waiter)
            if helper is not None:
                self.release(helper)
            raise

    def release(self, helper: Helper) -> None:
        with self._lock:
            self._busy.discard(helper)
            if self._closed:
                helper.close(kill=False)
                return
            self._hand_over(helper)

    def discard(self, helper: Helper) -> None:
        """Kill a helper that overran or died; start a replacement in the background."""
        count("helpers_replaced")
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
    def _request(self, helper: Helper, solution: str, golds: list[str], timeout_s: float | None) -> tuple[int, bytes, float]:
        for gold in golds:
            helper.golds[gold] = None
            helper.golds.move_to_end(gold)
        while len(helper.golds) > 4096:
            helper.golds.popitem(last=False)
        rid = next(self._ids)
        limit = (NO_TIMEOUT_HARD_LIMIT_S if timeout_s is None else timeout_s) + GRACE_S
        return rid, pickle.dumps((rid, solution, golds, timeout_s), protocol=pickle.HIGHEST_PROTOCOL), limit

    def _outcome(self, helper: Helper, rid: int, frame: Any) -> tuple[bool, str] | None:
        """The verdict, or None when the helper died (the caller retries once)."""
        if frame is None:
            self.discard(helper)
            return False, "timeout"
        if frame is EOF:
            count("helper_died")
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

    def _found_dead(self, helper: Helper) -> bool:
        """A helper that exited while idle (killed from outside, OOM): replaced, not the item's fault."""
        if helper.proc.poll() is None:
            return False
        self.discard(helper)
        return True

    def _protocol(self, solution: str, golds: list[str], timeout_s: float | None):
        """One item's exchange with the pool, written once for the sync and the async caller: a generator that
        yields ``("acquire", gold)`` and ``("exchange", helper, data, deadline)`` and is sent their results
        (a helper or None; the reply frame or EOF). Returns (verdict, status), or None when helpers cannot
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
            if frame is not EOF:
                note_duration(time.monotonic() - started)
            outcome = self._outcome(helper, rid, frame)
            if outcome is not None:
                return outcome
        return False, "helper_died"

    @contextlib.contextmanager
    def _discard_if_interrupted(self, helper: Helper):
        """A helper interrupted mid-exchange (Ctrl-C, a cancelled await) may still answer later: discarded."""
        try:
            yield
        except BaseException:
            self.discard(helper)
            raise

    def _exchange(self, helper: Helper, data: bytes, deadline: float) -> Any:
        with self._discard_if_interrupted(helper):
            return helper.exchange(data, deadline)

    async def _exchange_async(self, loop: asyncio.AbstractEventLoop, helper: Helper, data: bytes, deadline: float) -> Any:
        with self._discard_if_interrupted(helper):
            return await helper.exchange_async(loop, data, deadline)

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
_SIZES: dict[str, int | None] = {"pool_size": None, "max_pool_size": None}


def configure_pool(pool_size: int | None = None, max_pool_size: int | None = None) -> None:
    """The helper pool's size (default: `default_pool_size`) and overflow limit (`default_max_size`); they apply to the
    running pool too (helpers above the limit retire as they finish)."""
    with _POOL_LOCK:
        _SIZES["pool_size"], _SIZES["max_pool_size"] = pool_size, max_pool_size
        if _POOL is not None:
            _POOL.size = max(1, int(pool_size or default_pool_size()))
            _POOL.max_size = default_max_size(_POOL.size, max_pool_size)


def get_pool(pool_size: int | None = None) -> HelperPool:
    """This process's helper pool (created on first use; ``pool_size`` only matters then)."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                size = pool_size or _SIZES["pool_size"] or default_pool_size()
                _POOL = HelperPool(size, _SIZES["max_pool_size"])
    return _POOL


def current_pool() -> HelperPool | None:
    """The pool if one was started in this process (never starts one)."""
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


def after_fork() -> None:
    """In a forked child: never talk to the parent's helpers (start new ones when needed) nor keep their
    pipes open; locks another thread held at the fork are replaced."""
    global _POOL, _POOL_LOCK
    pool = _POOL
    if pool is not None:
        for helper in list(pool._idle) + list(pool._busy):
            helper.close_fds()
    _POOL, _POOL_LOCK = None, threading.Lock()


atexit.register(shutdown)
