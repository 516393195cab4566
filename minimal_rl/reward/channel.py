"""The parent's end of one helper process: start it, send a request and receive the reply, from a thread
(poll) or from an event loop (add_reader / add_writer), never past a deadline; and a caller waiting for a
helper (`Waiter`)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from minimal_rl.reward.helper import BOOT, EOF, HEADER, frame

HELPER_START_TIMEOUT_S = 120.0

class Helper:
    """One helper process and its two pipes (ours non-blocking)."""

    def __init__(self, proc: subprocess.Popen, wfd: int, rfd: int) -> None:
        self.proc, self.wfd, self.rfd, self.pid = proc, wfd, rfd, proc.pid
        self.busy_since: float | None = None
        self.overflow = False
        self.golds: OrderedDict[str, None] = OrderedDict()  # what it has parsed (its cache, approximately)
        self._buf = bytearray()
        os.set_blocking(wfd, False)
        os.set_blocking(rfd, False)

    def _popframe(self) -> bytes | None:
        if len(self._buf) < HEADER.size:
            return None
        n = HEADER.unpack_from(self._buf)[0]
        if len(self._buf) < HEADER.size + n:
            return None
        frame = bytes(self._buf[HEADER.size : HEADER.size + n])
        del self._buf[: HEADER.size + n]
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
        frame = self._popframe()
        return (frame, 0.0) if frame is not None else (None, deadline - time.monotonic())

    def recv(self, deadline: float) -> Any:
        """A frame, None when the deadline passed, or EOF."""
        poller = None
        while True:
            frame, remaining = self._buffered_or_time_left(deadline)
            if frame is not None or remaining <= 0:
                return frame
            if poller is None:
                poller = select.poll()
                poller.register(self.rfd, select.POLLIN)
            if poller.poll(max(1, math.ceil(remaining * 1000))) and not self._read_available():
                return EOF

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
        view = memoryview(frame(data))
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
            loop.add_reader(self.rfd, resolve, ready)
            try:
                await asyncio.wait_for(ready, remaining)
            except asyncio.TimeoutError:
                return None
            finally:
                loop.remove_reader(self.rfd)
            if not self._read_available():
                return EOF

    async def send_async(self, loop: asyncio.AbstractEventLoop, data: bytes, deadline: float) -> None:
        view = memoryview(frame(data))
        while view:
            view, remaining = self._write_some(view, deadline)
            if remaining is None:
                continue
            ready = loop.create_future()
            loop.add_writer(self.wfd, resolve, ready)
            try:
                await asyncio.wait_for(ready, remaining)
            except asyncio.TimeoutError:
                raise TimeoutError("helper not reading") from None
            finally:
                loop.remove_writer(self.wfd)

    def exchange(self, data: bytes, deadline: float) -> Any:
        """Send a request, receive its reply: the frame, None (the deadline passed) or EOF (the pipe broke, or
        the helper stopped reading)."""
        try:
            self.send(data, deadline)
            return self.recv(deadline)
        except (OSError, TimeoutError):
            return EOF

    async def exchange_async(self, loop: asyncio.AbstractEventLoop, data: bytes, deadline: float) -> Any:
        try:
            await self.send_async(loop, data, deadline)
            return await self.recv_async(loop, deadline)
        except (OSError, TimeoutError):
            return EOF

    def close_fds(self) -> None:
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self, kill: bool) -> None:
        """Kill (overrun, dead) or let go (retire: it exits when its request pipe closes)."""
        if kill:
            try:
                self.proc.kill()
            except OSError:
                pass
        self.close_fds()
        threading.Thread(target=_reap, args=(self.proc,), daemon=True).start()


def resolve(future: asyncio.Future) -> None:
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


def start_helper() -> Helper:
    """Start one helper and wait until it has imported Math-Verify; raises with the cause otherwise."""
    python = os.environ.get("MINIMAL_RL_REWARD_PYTHON") or sys.executable
    if not python:
        raise RuntimeError("sys.executable is empty (an embedded interpreter?)")
    req_r, req_w = os.pipe()
    res_r, res_w = os.pipe()
    args = {
        "sys_path": list(sys.path) + [str(Path(__file__).resolve().parents[2])],  # where minimal_rl is
        "rfd": req_r, "wfd": res_w, "ppid": os.getpid(),
    }
    try:
        proc = subprocess.Popen(
            [python, "-c", BOOT, json.dumps(args)],
            pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True,
        )
    except BaseException:
        for fd in (req_w, res_r):
            os.close(fd)
        raise
    finally:
        os.close(req_r)
        os.close(res_w)
    helper = Helper(proc, req_w, res_r)
    frame = helper.recv(time.monotonic() + HELPER_START_TIMEOUT_S)
    if frame is None or frame is EOF:
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


class Waiter:
    """A caller waiting for a helper: a thread (event) or a coroutine (future on its loop). ``done`` and
    ``helper`` change under the pool's lock only."""

    __slots__ = ("loop", "event", "future", "done", "helper", "gold")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, gold: str | None = None) -> None:
        self.loop = loop
        self.gold = gold
        self.event = threading.Event() if loop is None else None
        self.future = loop.create_future() if loop is not None else None
        self.done = False
        self.helper: Helper | None = None

    def assign(self, helper: Helper | None) -> bool:
        """Under the pool lock: hand over a helper (None: the pool is unavailable)."""
        if self.done:
            return False
        self.done, self.helper = True, helper  # before the wake-up: the woken caller reads .helper at once
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(resolve, self.future)
            except RuntimeError:  # its loop is closed: nobody is waiting any more
                self.helper = None
                return False
        else:
            self.event.set()
        return True
