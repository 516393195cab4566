"""Slow, blocked, hanging and crashing verifications for the reward tests, with no hook in the package.

A response that starts with ``PREFIX + command + "\\x00"`` makes Math-Verify's ``parse`` do ``command``
first, then parse the rest as usual:

    sleep=S        sleep S seconds (wall time, no CPU)
    spin=S         burn S seconds of CPU in Python code (as a slow Math-Verify run does)
    hang=S         block the timer signals, then sleep S seconds: only the parent's kill ends it
    crash          exit the process at once
    wait=PATH      wait (up to 10 minutes) until PATH exists: a slow item the test itself releases
    meet=DIR:N     leave a mark in DIR, then wait until N marks are there (up to 2 minutes; crash if they never
                   are): succeeds only if N verifications run at the same time

`install()` wraps ``math_verify.parse`` in this process; `hooked_python()` is an interpreter command for
``MINIMAL_RL_REWARD_PYTHON`` that installs it in every helper process before the helper starts.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from pathlib import Path

PREFIX = "\x00minimal_rl_test:"
_WRAPPER = Path(__file__).with_name("reward_hooked_python.sh")


def hooked(command: str, rest: str = " so $\\boxed{x+1}$") -> str:
    """A response that runs ``command`` before it is verified (gold ``x+1``: correct after the hook)."""
    return f"{PREFIX}{command}\x00{rest}"


def run_command(text: str) -> None:
    if not isinstance(text, str) or not text.startswith(PREFIX):
        return
    kind, _, arg = text[len(PREFIX):].split("\x00", 1)[0].partition("=")
    if kind == "sleep":
        time.sleep(float(arg))
    elif kind == "spin":
        end = time.monotonic() + float(arg)
        while time.monotonic() < end:
            pass
    elif kind == "hang":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM})
        time.sleep(float(arg))
    elif kind == "crash":
        os._exit(3)
    elif kind == "wait":
        end = time.monotonic() + 600
        while not os.path.exists(arg) and time.monotonic() < end:
            time.sleep(0.02)
    elif kind == "meet":
        folder, n = arg.rsplit(":", 1)
        Path(folder, f"{os.getpid()}-{time.monotonic_ns()}").touch()
        end = time.monotonic() + 120
        while len(os.listdir(folder)) < int(n):
            if time.monotonic() > end:
                os._exit(4)
            time.sleep(0.02)


def install() -> None:
    """Wrap ``math_verify.parse`` (the reward looks it up on the module at every call)."""
    import math_verify

    original = getattr(math_verify.parse, "__wrapped_by_reward_hooks__", math_verify.parse)

    def parse(pred, *args, **kwargs):
        run_command(pred)
        return original(pred, *args, **kwargs)

    parse.__wrapped_by_reward_hooks__ = original
    math_verify.parse = parse


def uninstall() -> None:
    import math_verify

    math_verify.parse = getattr(math_verify.parse, "__wrapped_by_reward_hooks__", math_verify.parse)


def hooked_python() -> str:
    """A command for MINIMAL_RL_REWARD_PYTHON: this interpreter, with `install()` run before the helper."""
    mode = _WRAPPER.stat().st_mode
    if not mode & stat.S_IXUSR:
        _WRAPPER.chmod(mode | stat.S_IXUSR)
    os.environ["MRL_TEST_REAL_PYTHON"] = sys.executable
    return str(_WRAPPER)
