"""The helper pool: helper processes shared by every thread and event loop of this process, fed by one
dispatcher thread.

A caller submits an answer and waits on a future (a thread: ``Future.result``; a coroutine:
``asyncio.wrap_future``, no thread per call). The dispatcher owns every helper's pipes and polls them all at
once: when a helper answers, it reads the verdict, hands it to the caller's future and gives the helper the
next waiting answer in the same step (no round trip through a caller's thread). It kills a helper whose
answer overran its budget by ``GRACE_S`` and replaces it, retries once an answer whose helper died under it,
and starts helpers as demand needs them.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import pickle
import select
import threading
import time
from collections import deque
from concurrent.futures import Future

from minimal_rl.reward import stats
from minimal_rl.reward.channel import NO_TIMEOUT_HARD_LIMIT_S, Helper, Job, start_helper  # noqa: F401 (re-exported)
from minimal_rl.reward.helper import EOF
from minimal_rl.reward.stats import count, logger, note_duration

# While answers wait and none has left the queue for this long (every helper is on a slow answer), one more
# helper is started (up to max_pool_size; they stay), and another after each further OVERFLOW_AFTER_S the
# queue stays stuck. Math-Verify takes milliseconds on ordinary answers, so this fires only when all helpers
# are on slow ones.
OVERFLOW_AFTER_S = 2.0
RETRY_START_AFTER_S = 5.0  # after a failed helper start, before the next try while others run


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


def default_max_size(size: int, max_size: int | None = None) -> int:
    """The overflow limit: ``max_size``, by default twice ``size`` and at least 8 (8 callers, as verl's
    executor threads, each stuck on a slow item still leave helpers for the rest)."""
    return max(size, int(max_size) if max_size else max(2 * size, 8))


class HelperPool:
    """Helper processes shared by every thread and event loop of this process (see the module docstring).

    Helpers start lazily as demand needs them, up to ``size``; while answers wait and the queue has stopped
    moving (every helper on a slow answer), one more starts for each, up to ``max_size``.
    """

    def __init__(self, size: int, max_size: int | None = None) -> None:
        self.size = max(1, int(size))
        self.max_size = default_max_size(self.size, max_size)
        self._lock = threading.Lock()
        self._helpers: list[Helper] = []
        self._starting = 0
        self._queue: deque[Job] = deque()
        self._queue_moved = time.monotonic()  # when an answer last left the queue (or the queue filled)
        self._unavailable: str | None = None
        self._retry_at = 0.0
        self._failed_at = -1e9
        self._ids = itertools.count()
        self._closed = False
        self._dispatcher: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # ---- what callers use
    def submit(self, solution: str, golds: list[str], timeout_s: float | None) -> Future:
        """Queue one answer; its future gives (verdict, status), or None when no helper can run."""
        job = Job(solution, golds, timeout_s)
        with self._lock:
            if self._unavailable is not None and time.monotonic() >= self._retry_at:
                self._unavailable = None  # try again
            if self._unavailable is not None or self._closed:
                job.finish(None)
                return job.future
            if not self._queue:
                self._queue_moved = time.monotonic()
            self._queue.append(job)
            self._grow()
            self._start_dispatcher()
        self._wake()
        return job.future

    def verify(self, solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str] | None:
        future = self.submit(solution, golds, timeout_s)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # still queued: never sent (once sent, its verdict is dropped)
            raise

    async def verify_async(self, solution: str, golds: list[str], timeout_s: float | None) -> tuple[bool, str] | None:
        return await asyncio.wrap_future(self.submit(solution, golds, timeout_s))

    def alive(self) -> int:
        """Helpers whose process is running."""
        with self._lock:
            return sum(h.proc.poll() is None for h in self._helpers)

    def unavailable_cause(self) -> str | None:
        with self._lock:
            if self._unavailable is not None and time.monotonic() >= self._retry_at:
                self._unavailable = None
            return self._unavailable

    def warm_up(self, n: int | None = None, timeout_s: float = 120.0) -> int:
        """Start helpers now (default: ``size``) and wait until they are ready; returns how many are alive."""
        n = self.size if n is None else min(int(n), self.max_size)
        with self._lock:
            for _ in range(max(0, n - len(self._helpers) - self._starting)):
                self._spawn()
            self._start_dispatcher()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._starting == 0:
                    break
            time.sleep(0.02)
        return self.alive()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for job in self._queue:
                job.finish(None)
            self._queue.clear()
            dispatcher = self._dispatcher
        self._wake()
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(5.0)
        with self._lock:
            helpers, self._helpers = self._helpers, []
        for helper in helpers:
            if helper.current is not None:
                helper.current.finish(None)
            helper.close(kill=helper.current is not None)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---- helpers starting (under the lock)
    def _grow(self) -> None:
        """Start helpers while answers wait: up to ``size`` as demand needs them. Beyond (up to ``max_size``) one
        more each time the queue has not moved for OVERFLOW_AFTER_S (every helper on a slow answer). One at a
        time: slow answers are mostly CPU-bound, so a helper beyond the cores slows every other one (verl
        submits a whole batch at once; one helper per waiting answer would start ``max_size`` at once and
        push slow answers past their wall-clock budget). A queue that moves starts none: a start costs
        ~0.7 s of CPU, which a short run would pay for nothing."""
        now = time.monotonic()
        if self._closed or self._unavailable is not None or now - self._failed_at < RETRY_START_AFTER_S:
            return
        live = len(self._helpers) + self._starting
        while len(self._queue) > self._starting and live < self.size:
            self._spawn()
            live += 1
        if self._queue and live < self.max_size and now - self._queue_moved > OVERFLOW_AFTER_S:
            self._spawn(overflow=True)
            self._queue_moved = now  # the next one only if the queue is still stuck OVERFLOW_AFTER_S from now

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
                if self._helpers or self._starting:
                    logger.warning("minimal_rl.reward: could not start an extra helper process: %s", exc)
                    return
                self._unavailable = f"{type(exc).__name__}: {exc}"
                self._retry_at = time.monotonic() + 60.0
                for job in self._queue:
                    job.finish(None)
                self._queue.clear()
            return
        count("helpers_started")
        helper.overflow = overflow
        with self._lock:
            self._starting -= 1
            self._unavailable = None
            if self._closed:
                helper.close(kill=True)
                return
            self._helpers.append(helper)
        self._wake()

    def _start_dispatcher(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(target=self._dispatch_forever, name="minimal_rl-reward-pool", daemon=True)
            self._dispatcher.start()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed
            pass

    # ---- the dispatcher thread
    def _dispatch_forever(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                self._check_time(now)
                self._grow()
                self._send_queued(now)
                poller = select.poll()
                poller.register(self._wake_r, select.POLLIN)
                by_fd = {}
                for helper in list(self._helpers):
                    if helper.wants_write() and not helper.flush():
                        self._on_death(helper)
                        continue
                    by_fd[helper.rfd] = helper
                    poller.register(helper.rfd, select.POLLIN | (select.POLLOUT if helper.wants_write() else 0))
                timeout = self._seconds_to_next_event(now)
            events = poller.poll(None if timeout is None else max(1, int(timeout * 1000) + 1))
            with self._lock:
                if self._closed:
                    return
                for fd, _ in events:
                    if fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except OSError:
                            pass
                        continue
                    helper = by_fd.get(fd)
                    if helper is not None and helper in self._helpers:
                        self._on_readable(helper, time.monotonic())

    def _send_queued(self, now: float) -> None:
        """Give waiting answers to idle helpers, preferring a helper that has parsed the answer's gold."""
        if not self._queue:
            return
        for helper in [h for h in self._helpers if h.proc.poll() is not None]:
            self._on_death(helper)  # exited while idle (killed from outside): not an answer's fault
        idle = [h for h in self._helpers if h.current is None]
        while self._queue and idle:
            job = self._queue.popleft()
            self._queue_moved = now
            if not job.running:
                if not job.future.set_running_or_notify_cancel():
                    continue  # its caller gave up while it waited
                job.running = True
            gold = job.golds[0] if job.golds else None
            helper = next((h for h in idle if gold in h.golds), idle[0])
            idle.remove(helper)
            rid = next(self._ids)
            payload = pickle.dumps((rid, job.solution, job.golds, job.timeout_s), protocol=pickle.HIGHEST_PROTOCOL)
            helper.push(job, rid, payload, now)
        stats.note_busy(sum(1 for h in self._helpers if h.current is not None))

    def _on_readable(self, helper: Helper, now: float) -> None:
        frames = helper.read_frames()
        if frames is EOF:
            self._on_death(helper)
            return
        for frame in frames:
            job, helper.current = helper.current, None
            try:
                rid, verdict, status = pickle.loads(frame)
            except Exception:  # noqa: BLE001 - cannot happen; be safe
                rid = verdict = status = None
            if job is None or rid != helper.rid:  # cannot happen either: one answer per helper at a time
                if job is not None:
                    job.finish((False, "error"))
                self._remove(helper, kill=True)
                return
            note_duration(now - helper.started)
            job.finish((bool(verdict), status))
        if helper.current is None and len(self._helpers) + self._starting > self.max_size:
            self._helpers.remove(helper)  # the pool shrank (configure): retire it
            helper.close(kill=False)

    def _on_death(self, helper: Helper) -> None:
        """A helper exited (crashed, killed from outside): its answer is retried once on another, and a
        replacement starts."""
        job = helper.current
        self._remove(helper, kill=True)
        if job is None:
            return
        count("helper_died")
        job.attempts += 1
        if job.attempts >= 2:
            job.finish((False, "helper_died"))
        else:
            self._queue.appendleft(job)

    def _remove(self, helper: Helper, kill: bool) -> None:
        count("helpers_replaced")
        if helper in self._helpers:
            self._helpers.remove(helper)
        helper.close(kill=kill)
        if not self._closed and len(self._helpers) + self._starting < self.size:
            self._spawn()

    def _check_time(self, now: float) -> None:
        """Kill a helper whose answer overran its limit (timeout + GRACE_S): that answer is wrong ("timeout")."""
        for helper in list(self._helpers):
            job = helper.current
            if job is not None and now - helper.started > job.limit:
                note_duration(now - helper.started)
                job.finish((False, "timeout"))
                helper.current = None
                self._remove(helper, kill=True)

    def _seconds_to_next_event(self, now: float) -> float | None:
        """Until the next limit or overflow check (None: only a wake-up or a reply)."""
        times = [h.started + h.current.limit for h in self._helpers if h.current is not None]
        growth = max(self._queue_moved + OVERFLOW_AFTER_S, self._failed_at + RETRY_START_AFTER_S)
        if self._queue and growth > now:  # once passed, `_grow` has acted on it
            times.append(growth)
        return max(0.0, min(times) - now) if times else None

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
        for helper in list(pool._helpers):
            helper.close_fds()
        for fd in (pool._wake_r, pool._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
    _POOL, _POOL_LOCK = None, threading.Lock()


atexit.register(shutdown)
