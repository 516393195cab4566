"""The entry points: routing each answer (fast path, this process, or the helper pool) and the public
functions for verl (`compute_score`, `compute_score_async`), TRL (`math_verify_reward`) and anyone
(`is_correct`, `verify_many`)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from minimal_rl.reward import bounded, stats
from minimal_rl.reward import pool as pool_module
from minimal_rl.reward.bounded import main_thread_can_time, verify_in_bounded_thread, verify_on_main_thread
from minimal_rl.reward.inputs import completion_text, ground_truth_answers
from minimal_rl.reward.stats import UNVERIFIED_STATUSES, count, note_status, warn_once
from minimal_rl.reward import verdict as verdict_module
from minimal_rl.reward.verdict import fast_verdict

SCORE_MAPPINGS = ("signed", "binary")
DEFAULT_TIMEOUT_S = 5.0

_FAST_PATH = {"on": True}


def configure(pool_size: int | None = None, max_pool_size: int | None = None, fast_path: bool = True) -> None:
    """Set the helper pool's size (default: the CPUs this process may use) and its overflow limit (default
    2x), which apply to the running pool too; ``fast_path=False`` sends every answer to Math-Verify (same
    verdicts, slower: for measuring what `fast_verdict` saves)."""
    pool_module.configure_pool(pool_size, max_pool_size)
    _FAST_PATH["on"] = bool(fast_path)


def reward_stats(reset: bool = False) -> dict[str, Any]:
    """The reward's counters in this process (`stats`), the most helpers busy at once, the longest
    verification (``max_verify_s``) and how many helpers are alive now (``helpers_alive``)."""
    snapshot = stats.snapshot(reset)
    pool = pool_module.current_pool()
    snapshot["helpers_alive"] = pool.alive() if pool is not None else 0
    return snapshot


# ---- Routing: where each answer is verified


def _fallback(solution: str, golds: list[str], timeout_s: float | None, cause: str) -> tuple[bool, str]:
    count("fallback_in_process")
    can_bound = main_thread_can_time() or (bounded.ASYNC_RAISE and timeout_s is not None)
    warn_once(
        "fallback",
        "minimal_rl.reward: cannot start Math-Verify helper processes (%s); verifying in this process instead "
        "(one at a time, %s). Fix: check that `%s -c 'import math_verify'` works (pip install 'minimal-rl[math]'), "
        "or set MINIMAL_RL_REWARD_PYTHON to an interpreter that has math-verify.",
        cause, "time-bounded" if can_bound else "WITHOUT a time limit",
        os.environ.get("MINIMAL_RL_REWARD_PYTHON") or sys.executable,
    )
    if main_thread_can_time():
        return verify_on_main_thread(solution, golds, timeout_s)
    return verify_in_bounded_thread(solution, golds, timeout_s)


def _failed(exc: Exception) -> tuple[bool, str]:
    """An exception around Math-Verify: wrong, counted, and said once (a training step must not die of it)."""
    if isinstance(exc, ImportError):
        warn_once(
            "import",
            "minimal_rl.reward: Math-Verify is not installed (%s): nothing can be verified, every answer scores "
            "as wrong and is counted as unverified. Fix: pip install 'minimal-rl[math]'.", exc,
        )
        return False, "unavailable"
    warn_once("error", "minimal_rl.reward: unexpected error while verifying (%s: %s); scored as wrong",
               type(exc).__name__, exc)
    return False, "error"


def _guarded(fn, *args) -> tuple[bool, str]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        return _failed(exc)


def _verify_sync(solution: str, golds: list[str], timeout_s: float | None, pool_size: int | None) -> tuple[bool, str]:
    if main_thread_can_time():
        return _guarded(verify_on_main_thread, solution, golds, timeout_s)
    pool = pool_module.get_pool(pool_size)
    result = _guarded(pool.verify, solution, golds, timeout_s)
    if result is None:
        return _guarded(_fallback, solution, golds, timeout_s, pool.unavailable_cause() or "unknown cause")
    return result


async def _verify_async(solution: str, golds: list[str], timeout_s: float | None, pool_size: int | None) -> tuple[bool, str]:
    pool = pool_module.get_pool(pool_size)
    try:
        result = await pool.verify_async(solution, golds, timeout_s)
    except Exception as exc:  # noqa: BLE001
        return _failed(exc)
    if result is None:
        cause = pool.unavailable_cause() or "unknown cause"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _guarded, _fallback, solution, golds, timeout_s, cause)
    return result


class _Item:
    """One answer to score: normalised inputs, and the verdict once known."""

    __slots__ = ("text", "golds", "verdict", "status")

    def __init__(self, solution: Any, ground_truth: Any) -> None:
        self.text = completion_text(solution)
        answers = ground_truth_answers(ground_truth)
        self.golds: list[str] = []
        self.verdict: bool | None = None
        self.status = "fast"
        if not answers:
            self.verdict, self.status = False, "invalid_ground_truth"
            warn_once(
                "ground_truth",
                "minimal_rl.reward: a ground truth is missing (%r): scored as wrong and counted as unverified. "
                "Fix the data (prepare-data drops such rows).", ground_truth if not isinstance(ground_truth, str) else "",
            )
            return
        for answer in answers:
            verdict = fast_verdict(self.text, answer) if _FAST_PATH["on"] else None
            if verdict is True:
                self.verdict = True
                self.golds = []
                return
            if verdict is None:
                self.golds.append(answer)
        if not self.golds:
            self.verdict = False

    def finish(self, verdict: bool, status: str) -> None:
        self.verdict, self.status = bool(verdict), status


def _check_options(score_mapping: str, timeout_s: Any) -> float | None:
    if score_mapping not in SCORE_MAPPINGS:
        raise ValueError(f"score_mapping must be one of {SCORE_MAPPINGS}, got {score_mapping!r}")
    if timeout_s is None:
        return None
    timeout_s = float(timeout_s)
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive or None, got {timeout_s!r}")
    return timeout_s


def score_from_correct(correct: bool, score_mapping: str = "signed") -> float:
    """+1 / -1 (``signed``, the paper) or 1 / 0 (``binary``)."""
    if score_mapping == "signed":
        return 1.0 if correct else -1.0
    if score_mapping == "binary":
        return 1.0 if correct else 0.0
    raise ValueError(f"score_mapping must be one of {SCORE_MAPPINGS}, got {score_mapping!r}")


def _result(item: _Item, score_mapping: str, report_unverified: bool) -> dict[str, float]:
    note_status(item.status)
    out = {"score": score_from_correct(bool(item.verdict), score_mapping), "acc": float(bool(item.verdict))}
    if report_unverified:
        out["unverified"] = float(item.status in UNVERIFIED_STATUSES)
    return out


# ---- Public entry points


@dataclass(frozen=True)
class _CallOptions:
    """The reward's options (verl's ``reward_kwargs``), checked once per call."""

    score_mapping: str = "signed"
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    report_unverified: bool = False
    pool_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout_s", _check_options(self.score_mapping, self.timeout_s))


def _options(score_mapping: str = "signed", timeout_s: float | None = DEFAULT_TIMEOUT_S, report_unverified: bool = False,
             pool_size: int | None = None, **ignored: Any) -> _CallOptions:
    # anything else verl passes along (its own keyword arguments) is ignored, as its reward functions do
    return _CallOptions(score_mapping, timeout_s, report_unverified, pool_size)


def compute_score(data_source: Any = None, solution_str: Any = "", ground_truth: Any = "", extra_info: Any = None,
                  **options: Any) -> dict[str, float]:
    """verl custom reward function: ``{"score": +1 | -1, "acc": 1 | 0}`` for one response.

    ``reward.custom_reward_function.path=pkg://minimal_rl.reward``, ``name=compute_score``; options through
    ``reward_kwargs``: ``score_mapping`` (signed / binary), ``timeout_s`` (default 5 s, None: no bound),
    ``report_unverified`` (adds ``"unverified"``), ``pool_size`` (helpers in this process). Never raises on
    model output or data.
    """
    opts = _options(**options)
    item = _Item(solution_str, ground_truth)
    if item.verdict is None:
        item.finish(*_verify_sync(item.text, item.golds, opts.timeout_s, opts.pool_size))
    return _result(item, opts.score_mapping, opts.report_unverified)


async def compute_score_async(data_source: Any = None, solution_str: Any = "", ground_truth: Any = "",
                              extra_info: Any = None, **options: Any) -> dict[str, float]:
    """`compute_score` as a coroutine (same options), which verl 0.9's reward managers await on their event loop
    (``inspect.iscoroutinefunction``): the fast path inline, Math-Verify in the helper pool, no thread per call.
    ``name=compute_score_async``."""
    opts = _options(**options)
    item = _Item(solution_str, ground_truth)
    if item.verdict is None:
        item.finish(*await _verify_async(item.text, item.golds, opts.timeout_s, opts.pool_size))
    return _result(item, opts.score_mapping, opts.report_unverified)


def is_correct(solution: Any, ground_truth: Any, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> bool:
    """True iff Math-Verify (as the paper calls it) accepts ``solution`` for ``ground_truth``.

    Never raises on model output or data: garbage, empty strings and timeouts are wrong answers.
    """
    timeout_s = _check_options("signed", timeout_s)
    item = _Item(solution, ground_truth)
    if item.verdict is None:
        item.finish(*_verify_sync(item.text, item.golds, timeout_s, None))
    note_status(item.status)
    return bool(item.verdict)


def verify_many(solutions: Iterable[Any], ground_truths: Iterable[Any], timeout_s: float | None = DEFAULT_TIMEOUT_S,
                pool_size: int | None = None) -> list[tuple[bool, str]]:
    """(correct, status) for each pair, the ones that need Math-Verify verified in parallel by the helper
    pool (a few are verified right here). status: "fast", "ok", "timeout", ... (see UNVERIFIED_STATUSES)."""
    items = [_Item(s, g) for s, g in zip(solutions, ground_truths)]
    pending = [item for item in items if item.verdict is None]
    if len(pending) <= 2 and main_thread_can_time():
        for item in pending:
            item.finish(*_guarded(verify_on_main_thread, item.text, item.golds, timeout_s))
    elif pending:
        pool = pool_module.get_pool(pool_size)
        futures = [pool.submit(item.text, item.golds, timeout_s) for item in pending]
        try:
            results = [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()  # the ones not sent yet (Ctrl-C while waiting)
            raise
        for item, result in zip(pending, results):
            if result is None:
                result = _guarded(_fallback, item.text, item.golds, timeout_s, pool.unavailable_cause() or "unknown cause")
            item.finish(*result)
    for item in items:
        note_status(item.status)
    return [(bool(item.verdict), item.status) for item in items]


def math_verify_reward(
    completions: list[Any],
    answer: list[Any] | None = None,
    score_mapping: str = "signed",
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: one score per completion against the dataset's ``answer`` column.

    The completions that need Math-Verify are verified in parallel (helper processes); the same input rule
    as `compute_score` (chat messages, non-str completions, None / NaN / list answers). Never raises on them;
    a caller's bug does raise (ValueError): no ``answer`` column, or not one answer per completion.
    """
    timeout_s = _check_options(score_mapping, timeout_s)
    completions = list(completions)
    if answer is None:
        raise ValueError(
            "math_verify_reward needs the dataset column 'answer' (TRL passes dataset columns as keyword "
            "arguments); this dataset has none. minimal_rl.data.trl_row builds rows with it."
        )
    answers = list(answer)
    if len(answers) != len(completions):
        raise ValueError(
            f"math_verify_reward got {len(completions)} completions but {len(answers)} answers: one answer per "
            "completion is needed (TRL repeats each prompt's row for its generations)"
        )
    verdicts = verify_many(completions, answers, timeout_s)
    return [score_from_correct(correct, score_mapping) for correct, _ in verdicts]


def _after_fork_in_child() -> None:
    pool_module.after_fork()
    stats.after_fork()
    verdict_module.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
