"""Off the main thread: the helper pool. A slow item delays nobody else, every call is bounded by its own
timeout (parse + verify), a dead or hung helper is replaced, it works inside daemonic processes and
scripts without a ``__main__`` guard, and when it cannot work it says so (once) and counts.

Slow, blocked, hanging and crashing verifications come from tests/support/reward_hooks.py (Math-Verify's
``parse`` wrapped in the helpers through MINIMAL_RL_REWARD_PYTHON); the package has no test hook. The tests
wait for events (a blocked item released by the test, two verifications meeting), not for time windows;
where a bound is checked, the item would otherwise run 10 minutes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")

import reward_hooks  # noqa: E402
from reward_hooks import hooked  # noqa: E402

from minimal_rl import reward  # noqa: E402
from minimal_rl.reward import bounded, compute_score, compute_score_async, stats  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "tests" / "support"
HALF = ("$\\boxed{\\frac{2}{4}}$", "0.5")  # needs Math-Verify (not the integer fast path)
FOREVER = 600  # a hook that would run this long shows that a bound (far shorter) ended it


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start


def until(condition, seconds: float = 120.0) -> bool:
    """Wait for an event (helpers restarted in the background); False if it never came."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def hook_pool():
    """Helpers started through the hooked interpreter, two of them (up to 4 with overflow)."""
    saved = os.environ.get("MINIMAL_RL_REWARD_PYTHON")
    os.environ["MINIMAL_RL_REWARD_PYTHON"] = reward_hooks.hooked_python()
    reward_hooks.install()  # in this process too (main-thread verification)
    reward.shutdown()
    reward.configure(pool_size=2, max_pool_size=4)
    yield
    reward.shutdown()
    reward.configure()
    reward_hooks.uninstall()
    if saved is None:
        os.environ.pop("MINIMAL_RL_REWARD_PYTHON", None)
    else:
        os.environ["MINIMAL_RL_REWARD_PYTHON"] = saved


@pytest.fixture
def pool(hook_pool):
    """The module's pool with both helpers alive (earlier tests kill some), counters reset."""
    pool = reward.get_pool()
    pool.warm_up()
    assert until(lambda: reward.reward_stats()["helpers_alive"] >= 2)
    reward.reward_stats(reset=True)
    return pool


def in_thread(fn, *args, **kwargs):
    """Run fn on a worker thread (the reward loop's situation) and return its result."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(fn, *args, **kwargs).result()


def helper_pids() -> list[int]:
    """This process's helper processes, as the operating system lists them."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"minimal_rl.reward.helper" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_slow_item_does_not_delay_the_others(pool, tmp_path):
    release = tmp_path / "release"
    with ThreadPoolExecutor(8) as executor:
        slow = executor.submit(compute_score, "x", hooked(f"wait={release}"), "x+1", timeout_s=FOREVER)
        assert until(lambda: reward.reward_stats()["peak_busy_helpers"] >= 1)
        normal = [executor.submit(compute_score, "x", *HALF) for _ in range(40)]
        assert all(f.result()["score"] == 1.0 for f in normal)
        assert not slow.done()  # all 40 answered while the slow item still holds its helper
        release.touch()
        assert slow.result()["score"] == 1.0


def test_a_caller_waits_at_most_about_one_items_budget(pool, tmp_path):
    """Three callers hold both helpers and the queue with slow items; a trivial item behind them is answered
    by an overflow helper while all three are still blocked (no queue of slow budgets ahead of it)."""
    release = tmp_path / "release"
    with ThreadPoolExecutor(8) as executor:
        slow = [executor.submit(compute_score, "x", hooked(f"wait={release}"), "x+1", timeout_s=FOREVER)
                for _ in range(3)]
        assert until(lambda: reward.reward_stats()["peak_busy_helpers"] >= 2)
        trivial = executor.submit(compute_score, "x", *HALF)
        assert trivial.result()["score"] == 1.0
        assert not any(f.done() for f in slow)
        release.touch()
        assert [f.result()["score"] for f in slow] == [1.0] * 3
    # both first helpers are blocked, so an overflow helper answered it (one may serve both waiting items)
    assert reward.reward_stats()["helpers_started"] >= 1


def test_threads_verify_in_parallel(pool, tmp_path):
    """No lock across a verification: two items that each wait for the other finish only if two helpers
    verify them at the same time (a serialised pool makes the first give up and crash its helper)."""
    with ThreadPoolExecutor(2) as executor:
        results = list(executor.map(lambda _: compute_score("x", hooked(f"meet={tmp_path}:2"), "x+1")["score"], range(2)))
    assert results == [1.0, 1.0]
    assert reward.reward_stats()["peak_busy_helpers"] >= 2


def test_hung_helper_is_killed_on_time_and_replaced(pool):
    # blocked timers: only the parent's kill at timeout + GRACE_S ends it
    result, elapsed = in_thread(timed, compute_score, "x", hooked(f"hang={FOREVER}"), "x+1", timeout_s=2,
                                report_unverified=True)
    assert result == {"score": -1.0, "acc": 0.0, "unverified": 1.0}
    assert elapsed < FOREVER / 10
    assert in_thread(compute_score, "x", *HALF)["score"] == 1.0  # the others keep working
    assert until(lambda: reward.reward_stats()["helpers_alive"] >= 2)
    assert reward.reward_stats()["helpers_replaced"] == 1


def test_crashing_helper_is_replaced_and_counted(pool):
    result = in_thread(compute_score, "x", hooked("crash"), "x+1", report_unverified=True)
    assert result["unverified"] == 1.0  # retried once on another helper, which crashed too
    assert reward.reward_stats()["helper_died"] == 2
    assert in_thread(compute_score, "x", *HALF)["score"] == 1.0


def test_helpers_killed_from_outside_are_replaced(pool):
    """Every helper dies while idle (OOM killer, someone's kill -9): the next answers still come, from
    replacements started in the background."""
    pids = helper_pids()
    assert len(pids) >= 2
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # Gone from /proc, not only from helper_pids(): a dying process loses its command line before it can be
    # waited for, and an answer sent in that window dies with it (retried once, then wrong). Reaped means
    # the pool has seen the exit.
    assert until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids))
    for k in (101, 103, 107):
        result = in_thread(compute_score, "x", f"$\\boxed{{\\frac{{{2 * k}}}{{6}}}}$", f"\\frac{{{k}}}{{3}}")
        assert result["score"] == 1.0
    assert reward.reward_stats()["helpers_replaced"] >= 1


@pytest.mark.parametrize("where", ["main_thread", "worker_thread", "async", "trl_batch"])
def test_each_call_is_bounded_by_its_timeout(pool, where):
    item = (hooked(f"sleep={FOREVER}"), "x+1")
    if where == "main_thread":
        result, elapsed = timed(compute_score, "x", *item, timeout_s=2)
        score = result["score"]
    elif where == "worker_thread":
        result, elapsed = in_thread(timed, compute_score, "x", *item, timeout_s=2)
        score = result["score"]
    elif where == "async":
        result, elapsed = timed(asyncio.run, compute_score_async("x", *item, timeout_s=2))
        score = result["score"]
    else:
        # one slow item among others: the others are right, the slow one wrong
        result, elapsed = timed(reward.math_verify_reward, [item[0]] + [HALF[0]] * 5, [item[1]] + [HALF[1]] * 5, timeout_s=2)
        assert result[1:] == [1.0] * 5
        score = result[0]
    assert score == -1.0
    assert elapsed < FOREVER / 10
    assert reward.reward_stats()["timeouts"] == 1


def test_async_variant_awaits_helpers_without_a_thread_per_call(pool, tmp_path):
    release = tmp_path / "release"

    async def main():
        slow = asyncio.ensure_future(compute_score_async("x", hooked(f"wait={release}"), "x+1", timeout_s=FOREVER))
        normal = await asyncio.gather(*[compute_score_async("x", *HALF) for _ in range(40)])
        assert not slow.done()
        release.touch()
        return [r["score"] for r in normal], (await slow)["score"]

    threads_before = threading.active_count()
    normal, slow = asyncio.run(main())
    assert normal == [1.0] * 40 and slow == 1.0
    assert threading.active_count() <= threads_before + 2  # the pool's monitor, an overflow helper's starter


# ----------------------------------------------------------------------------------------------
# Where multiprocessing cannot start children, and where nothing can
# ----------------------------------------------------------------------------------------------


def run_script(tmp_path: Path, source: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    full_env = {key: value for key, value in os.environ.items() if key != "MINIMAL_RL_REWARD_PYTHON"}
    full_env.update({"PYTHONPATH": f"{REPO}{os.pathsep}{SUPPORT}", **(env or {})})
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=full_env, timeout=240)


def test_inside_a_daemonic_process(tmp_path):
    """Ray actors and DataLoader workers can be daemonic: multiprocessing refuses to start children
    there, the helpers (plain subprocesses) still start."""
    proc = run_script(tmp_path, """
        import multiprocessing as mp, threading

        def child(queue):
            from minimal_rl.reward import compute_score, reward_stats
            out = []
            t = threading.Thread(target=lambda: out.append(compute_score("x", "$\\\\boxed{\\\\frac{2}{4}}$", "0.5")["score"]))
            t.start(); t.join()
            queue.put((mp.current_process().daemon, out[0], reward_stats()))

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            p = ctx.Process(target=child, args=(queue,), daemon=True)
            p.start()
            daemon, score, stats = queue.get(timeout=200)
            p.join()
            print("RESULT", daemon, score, stats["helpers_started"], stats["fallback_in_process"])
    """)
    assert "RESULT True 1.0" in proc.stdout, proc.stderr[-2000:]
    started, fallback = proc.stdout.split("RESULT True 1.0")[1].split()
    assert int(started) >= 1 and int(fallback) == 0


def test_script_without_main_guard(tmp_path):
    """The helpers never re-run the caller's __main__ (multiprocessing's spawn would)."""
    proc = run_script(tmp_path, """
        import threading
        from minimal_rl.reward import compute_score, reward_stats
        print("TOP LEVEL RAN", flush=True)
        out = []
        t = threading.Thread(target=lambda: out.append(compute_score("x", "$\\\\boxed{\\\\frac{2}{4}}$", "0.5")["score"]))
        t.start(); t.join()
        print("RESULT", out[0], reward_stats()["fallback_in_process"])
    """)
    assert proc.stdout.count("TOP LEVEL RAN") == 1, proc.stdout + proc.stderr[-2000:]
    assert "RESULT 1.0 0" in proc.stdout


def test_helpers_that_cannot_start_are_loud_and_counted(tmp_path):
    proc = run_script(tmp_path, """
        import logging, threading
        import reward_hooks
        reward_hooks.install()
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from minimal_rl.reward import compute_score, reward_stats
        out = []
        def work():
            for _ in range(3):
                out.append(compute_score("x", "$\\\\boxed{\\\\frac{2}{4}}$", "0.5")["score"])
            out.append(compute_score("x", reward_hooks.hooked("sleep=600"), "x+1", timeout_s=1)["score"])
        t = threading.Thread(target=work); t.start(); t.join()
        s = reward_stats()
        print("RESULT", out, s["fallback_in_process"], s["helper_start_failures"], s["timeouts"])
    """, env={"MINIMAL_RL_REWARD_PYTHON": "/nonexistent/python"})
    assert "RESULT [1.0, 1.0, 1.0, -1.0] 4 1 1" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "cannot start Math-Verify helper processes" in line]
    assert len(warnings) == 1  # once, with the cause and the fix
    assert "/nonexistent/python" in warnings[0] and "time-bounded" in warnings[0]
    assert "MINIMAL_RL_REWARD_PYTHON" in warnings[0] and "pip install" in warnings[0]


def test_no_timeout_mechanism_is_loud_and_counted(monkeypatch, caplog):
    monkeypatch.setenv("MINIMAL_RL_REWARD_PYTHON", "/nonexistent/python")
    monkeypatch.setattr(bounded, "ASYNC_RAISE", False)  # as on an interpreter without PyThreadState_SetAsyncExc
    monkeypatch.setattr(stats, "_WARNED", set())
    reward.shutdown()
    reward.reward_stats(reset=True)
    try:
        with caplog.at_level(logging.WARNING, logger="minimal_rl.reward"):
            assert in_thread(compute_score, "x", *HALF)["score"] == 1.0
            assert in_thread(compute_score, "x", *HALF)["score"] == 1.0
        text = [r.getMessage() for r in caplog.records]
        assert sum("WITHOUT a time limit" in t for t in text) == 2  # the fallback's and the verifier's, once each
        assert reward.reward_stats()["unbounded"] == 2
    finally:
        reward.shutdown()
