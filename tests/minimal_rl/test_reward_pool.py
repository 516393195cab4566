"""Off the main thread: the helper pool. A slow item delays nobody else, every call is bounded by its own
timeout (parse + verify), a dead or hung helper is replaced, it works inside daemonic processes and
scripts without a ``__main__`` guard, and when it cannot work it says so (once) and counts.

Slow, hanging and crashing verifications are injected with the reward's test hook (a response starting
with ``TEST_HOOK_PREFIX``, honoured only with MINIMAL_RL_REWARD_TEST_HOOKS=1)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")

from minimal_rl import reward  # noqa: E402
from minimal_rl.reward import TEST_HOOK_PREFIX, compute_score, compute_score_async  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HALF = ("$\\boxed{\\frac{2}{4}}$", "0.5")  # needs Math-Verify (not the integer fast path)


def hook(command: str) -> str:
    return f"{TEST_HOOK_PREFIX}{command}\x00 so $\\boxed{{x+1}}$"


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start


@pytest.fixture(scope="module")
def hook_pool():
    """Helpers that honour the test hooks, two of them (one more for overflow), for this module."""
    saved = os.environ.get("MINIMAL_RL_REWARD_TEST_HOOKS")
    os.environ["MINIMAL_RL_REWARD_TEST_HOOKS"] = "1"
    reward.shutdown()
    reward.configure(pool_size=2, max_pool_size=3)
    yield
    reward.shutdown()
    reward.configure()
    if saved is None:
        os.environ.pop("MINIMAL_RL_REWARD_TEST_HOOKS", None)
    else:
        os.environ["MINIMAL_RL_REWARD_TEST_HOOKS"] = saved


@pytest.fixture
def pool(hook_pool):
    """The module's pool with both helpers alive (earlier tests kill some), counters reset."""
    pool = reward.get_pool()
    pool.warm_up()
    reward.reward_stats(reset=True)
    return pool


def in_thread(fn, *args, **kwargs):
    """Run fn on a worker thread (the reward loop's situation) and return its result."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(fn, *args, **kwargs).result()


def test_slow_item_does_not_delay_the_others(pool):
    with ThreadPoolExecutor(8) as executor:
        slow = executor.submit(timed, compute_score, "x", hook("spin=30"), "x+1", timeout_s=3)
        time.sleep(0.2)
        normal = [executor.submit(timed, compute_score, "x", *HALF, timeout_s=3) for _ in range(40)]
        normal_results = [f.result() for f in normal]
        slow_result, slow_time = slow.result()
    assert slow_result["score"] == -1.0 and 2.5 < slow_time < 4.0  # its own budget, then wrong
    assert all(r["score"] == 1.0 for r, _ in normal_results)
    assert max(t for _, t in normal_results) < 1.5, sorted(t for _, t in normal_results)[-3:]
    stats = reward.reward_stats()
    assert stats["timeouts"] == 1 and stats["helpers_replaced"] == 0  # the helper stopped itself and lives on


def test_hung_helper_is_killed_on_time_and_replaced(pool):
    # blocked timers: only the parent's kill at timeout + GRACE_S ends it
    result, elapsed = in_thread(timed, compute_score, "x", hook("hang=60"), "x+1", timeout_s=2, report_unverified=True)
    assert result == {"score": -1.0, "acc": 0.0, "unverified": 1.0}
    assert 1.9 < elapsed < 2 + 1.0
    assert in_thread(compute_score, "x", *HALF)["score"] == 1.0  # the others keep working
    deadline = time.monotonic() + 30
    while reward.reward_stats()["helpers_alive"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = reward.reward_stats()
    assert stats["helpers_replaced"] == 1 and stats["helpers_alive"] == 2


def test_crashing_helper_is_replaced_and_counted(pool):
    result = in_thread(compute_score, "x", hook("crash"), "x+1", report_unverified=True)
    assert result["unverified"] == 1.0  # retried once on another helper, which crashed too
    assert reward.reward_stats()["helper_died"] == 2
    assert in_thread(compute_score, "x", *HALF)["score"] == 1.0


def test_helper_killed_from_outside_is_replaced_without_stalling(pool):
    """One of two helpers dies while idle (OOM killer, someone's kill -9): answers go on at once on the
    other while a replacement starts in the background."""
    victim = pool._idle[-1]  # the one handed out next to a gold no helper has seen
    os.kill(victim.pid, 9)
    time.sleep(0.3)
    for k in (101, 103, 107):
        result, elapsed = in_thread(timed, compute_score, "x", f"$\\boxed{{\\frac{{{2 * k}}}{{6}}}}$", f"\\frac{{{k}}}{{3}}")
        assert result["score"] == 1.0 and elapsed < 2.0
    assert reward.reward_stats()["helpers_replaced"] == 1
    deadline = time.monotonic() + 120
    while reward.reward_stats()["helpers_alive"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reward.reward_stats()["helpers_alive"] == 2


@pytest.mark.parametrize("where", ["main_thread", "worker_thread", "async", "trl_batch"])
def test_each_call_is_bounded_by_its_timeout(pool, where):
    item = (hook("sleep=60"), "x+1")
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
        # one slow item among others: the batch takes the slow item's budget, not more
        result, elapsed = timed(reward.math_verify_reward, [item[0]] + [HALF[0]] * 5, [item[1]] + [HALF[1]] * 5, timeout_s=2)
        assert result[1:] == [1.0] * 5
        score = result[0]
    assert score == -1.0
    assert elapsed < 2 + 1.0


def test_async_variant_awaits_helpers_without_a_thread_per_call(pool):
    async def main():
        items = [compute_score_async("x", *HALF) for _ in range(40)]
        items.append(compute_score_async("x", hook("spin=30"), "x+1", timeout_s=2))
        return await asyncio.gather(*items)

    threads_before = threading.active_count()
    results, elapsed = timed(asyncio.run, main())
    assert [r["score"] for r in results] == [1.0] * 40 + [-1.0]
    assert elapsed < 2 + 1.0
    assert threading.active_count() <= threads_before + 1  # at most an overflow helper's starter


def test_threads_verify_in_parallel(pool):
    """No lock across a verification: 4 answers that each take 1 s of wall time (no CPU, so a loaded
    machine cannot blur it) finish in about 2 s on 2 helpers from 4 threads, not 4 s."""
    with ThreadPoolExecutor(4) as executor:
        results, elapsed = timed(lambda: list(executor.map(
            lambda _: compute_score("x", hook("sleep=1"), "x+1", timeout_s=5)["score"], range(4))))
    assert results == [1.0] * 4  # after the hook, the answer itself is verified (and right)
    assert elapsed < 3.2
    assert reward.reward_stats()["peak_busy_helpers"] >= 2


def test_thread_pool_throughput(pool, shared_data):
    """verl's executor pattern on real answers: 8 threads keep every helper busy. The speed-up itself
    depends on how much of the (shared) machine this process gets; it is printed, and only a serialised
    pool (much slower than one thread, as the old single helper under a global lock was) fails."""
    rows = [json.loads(line) for line in (shared_data / "math500.jsonl").read_text().splitlines()][:150]
    texts = [f"So the answer is $\\boxed{{{r['answer']}}}$, as computed." for r in rows]  # not the fast path
    golds = [r["answer"] for r in rows]
    score = lambda pair: compute_score("math500", *pair)["score"]  # noqa: E731
    assert set(ThreadPoolExecutor(8).map(score, zip(texts, golds))) == {1.0}  # golds parsed, as in training
    one = eight = float("inf")
    for _ in range(2):
        with ThreadPoolExecutor(1) as ex:
            one = min(one, timed(lambda: list(ex.map(score, zip(texts, golds))))[1])
        with ThreadPoolExecutor(8) as ex:
            eight = min(eight, timed(lambda: list(ex.map(score, zip(texts, golds))))[1])
    print(f"\n150 MATH500 answers: 1 thread {one:.2f} s, 8 threads {eight:.2f} s ({os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f})")
    assert reward.reward_stats()["peak_busy_helpers"] >= 2
    assert eight < 1.5 * one


# ----------------------------------------------------------------------------------------------
# Where multiprocessing cannot start children, and where nothing can
# ----------------------------------------------------------------------------------------------


def run_script(tmp_path: Path, source: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
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
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from minimal_rl.reward import compute_score, reward_stats
        out = []
        def work():
            for _ in range(3):
                out.append(compute_score("x", "$\\\\boxed{\\\\frac{2}{4}}$", "0.5")["score"])
            out.append(compute_score("x", "\\x00minimal_rl_test:sleep=60\\x00 $\\\\boxed{x+1}$", "x+1", timeout_s=1)["score"])
        t = threading.Thread(target=work); t.start(); t.join()
        s = reward_stats()
        print("RESULT", out, s["fallback_in_process"], s["helper_start_failures"], s["timeouts"])
    """, env={"MINIMAL_RL_REWARD_PYTHON": "/nonexistent/python", "MINIMAL_RL_REWARD_TEST_HOOKS": "1"})
    assert "RESULT [1.0, 1.0, 1.0, -1.0] 4 1 1" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "cannot start Math-Verify helper processes" in line]
    assert len(warnings) == 1  # once, with the cause and the fix
    assert "/nonexistent/python" in warnings[0] and "time-bounded" in warnings[0]
    assert "MINIMAL_RL_REWARD_PYTHON" in warnings[0] and "pip install" in warnings[0]


def test_no_timeout_mechanism_is_loud_and_counted(monkeypatch, caplog):
    monkeypatch.setenv("MINIMAL_RL_REWARD_PYTHON", "/nonexistent/python")
    monkeypatch.setattr(reward, "_ASYNC_RAISE", False)
    monkeypatch.setattr(reward, "_WARNED", set())
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
