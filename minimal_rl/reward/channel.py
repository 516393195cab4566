"""The parent's end of one helper process: start it, queue requests on its pipe and read its replies, all
without blocking (the pool's dispatcher thread polls every helper at once); and what a request is (`Job`: an
answer and its caller's future)."""

from __future__ import annotations

import json
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from concurrent.futures import Future
from typing import Any

from minimal_rl.reward.bounded import GRACE_S
from minimal_rl.reward.helper import BOOT, EOF, HEADER, frame

HELPER_START_TIMEOUT_S = 120.0
NO_TIMEOUT_HARD_LIMIT_S = 600.0  # timeout_s=None: a helper is still killed after this long on one answer
GOLDS_REMEMBERED = 4096  # golds a helper is taken to have parsed (its cache, approximately)


class Job:
    """One answer to verify: its future (None when the pool cannot verify: use the fallback)."""

    __slots__ = ("future", "solution", "golds", "timeout_s", "limit", "attempts", "running")

    def __init__(self, solution: str, golds: list[str], timeout_s: float | None) -> None:
        self.future: Future = Future()
        self.solution, self.golds, self.timeout_s = solution, golds, timeout_s
        self.limit = (NO_TIMEOUT_HARD_LIMIT_S if timeout_s is None else timeout_s) + GRACE_S
        self.attempts = 0
        self.running = False

    def finish(self, result: tuple[bool, str] | None) -> None:
        if not self.future.done():
            self.future.set_result(result)


class Helper:
    """One helper process and its two pipes (ours non-blocking): the answer it verifies (``current``, a
    `Job`, with its request id ``rid``) since ``started``, or None when it is idle."""

    def __init__(self, proc: subprocess.Popen, wfd: int, rfd: int) -> None:
        self.proc, self.wfd, self.rfd, self.pid = proc, wfd, rfd, proc.pid
        self.overflow = False
        self.golds: OrderedDict[str, None] = OrderedDict()
        self.current: Job | None = None
        self.rid = -1
        self.started = 0.0
        self._in = bytearray()
        self._out = bytearray()
        os.set_blocking(wfd, False)
        os.set_blocking(rfd, False)

    def push(self, job: Job, rid: int, payload: bytes, now: float) -> None:
        """Give it one answer (written by `flush`)."""
        self.current, self.rid, self.started = job, rid, now
        self._out += frame(payload)
        for gold in job.golds:
            self.golds[gold] = None
            self.golds.move_to_end(gold)
        while len(self.golds) > GOLDS_REMEMBERED:
            self.golds.popitem(last=False)

    def wants_write(self) -> bool:
        return bool(self._out)

    def flush(self) -> bool:
        """Write what the pipe takes now; False when the helper is gone (its read end closed)."""
        try:
            while self._out:
                written = os.write(self.wfd, self._out)
                del self._out[:written]
        except BlockingIOError:
            pass
        except OSError:
            return False
        return True

    def read_frames(self) -> list[bytes] | object:
        """The complete replies that have arrived, or EOF when the helper is gone."""
        try:
            while True:
                chunk = os.read(self.rfd, 1 << 16)
                if not chunk:
                    return EOF
                self._in += chunk
                if len(chunk) < 1 << 16:
                    break
        except BlockingIOError:
            pass
        except OSError:
            return EOF
        frames = []
        while len(self._in) >= HEADER.size:
            n = HEADER.unpack_from(self._in)[0]
            if len(self._in) < HEADER.size + n:
                break
            frames.append(bytes(self._in[HEADER.size : HEADER.size + n]))
            del self._in[: HEADER.size + n]
        return frames

    def close_fds(self) -> None:
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self, kill: bool) -> None:
        """Kill (overrun, dead, taken back while busy) or let go (it exits when its request pipe closes)."""
        if kill:
            try:
                self.proc.kill()
            except OSError:
                pass
        self.close_fds()
        threading.Thread(target=_reap, args=(self.proc,), daemon=True).start()


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except Exception:  # noqa: BLE001
        pass


def _first_frame(helper: Helper, deadline: float) -> bytes | None | object:
    """The helper's first reply (its "ready"), None when ``deadline`` passed, EOF if it exited."""
    while True:
        frames = helper.read_frames()
        if frames is EOF or frames:
            return frames if frames is EOF else frames[0]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        select.select([helper.rfd], [], [], remaining)


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
    try:
        first = _first_frame(helper, time.monotonic() + HELPER_START_TIMEOUT_S)
    except BaseException:
        helper.close(kill=True)
        raise
    if first is None or first is EOF:
        helper.close(kill=True)
        code = proc.poll()
        raise RuntimeError(
            f"{python} did not start a helper within {HELPER_START_TIMEOUT_S:.0f} s" if first is None
            else f"the helper ({python}) exited with code {code} before it was ready"
        )
    kind, _, detail = pickle.loads(first)
    if kind != "ready":
        helper.close(kill=True)
        raise RuntimeError(f"the helper ({python}) could not import Math-Verify: {detail}")
    return helper
