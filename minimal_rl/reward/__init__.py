"""The paper's verifier (Sec. 2): Math-Verify's ``math_metric`` verdict, bounded in time, for verl and TRL.

Usage
-----
verl:  ``reward.custom_reward_function.path=pkg://minimal_rl.reward`` with ``name=compute_score_async``
       (awaited directly by verl 0.9's reward loop) or ``name=compute_score`` (run in its thread pool);
       both return ``{"score": +1 | -1, "acc": 1 | 0}`` (``score_mapping="binary"``: 1 / 0;
       ``report_unverified=True`` adds ``"unverified": 1 | 0``).
TRL:   ``reward_funcs=[math_verify_reward]`` (dataset column ``answer``): +1 / -1 per completion, the
       batch verified in parallel.
Any:   ``is_correct(solution, ground_truth)``; ``reward_stats()`` for the counters.

The verdict
-----------
Exactly what the paper's released code computes (its ``verl/utils/reward_score/math_verify.py``)::

    math_metric(gold_extraction_target=(LatexExtractionConfig(),),
                pred_extraction_target=(ExprExtractionConfig(), LatexExtractionConfig()))
    (["\\boxed{" + ground_truth + "}"], [solution])   # any exception -> 0

i.e. ``parse`` of the response and of the boxed gold, the ``str`` conversion ``math_metric`` performs,
then ``verify(gold, prediction, float_rounding=6)``; an unparseable gold is wrong. Several accepted
answers (a list / tuple / array ground truth) are correct if any one is. The only answers given without
Math-Verify are the two shapes where its extraction rules fix the verdict (`fast_verdict`, proved in
docs/reward.md and tested against the real ``math_metric``): a response whose only candidate answer is
one boxed plain integer checked against a plain-integer gold, and a response with nothing Math-Verify
could extract at all.

Where it runs, and the time bound
---------------------------------
``timeout_s`` (default 5) bounds each item's verification, parse and verify together.

* On the main thread (TRL, scripts, evaluation workers): in this process, bounded with ``SIGALRM``.
* Off the main thread (verl's reward loop threads, Ray actors' event loops, thread pools), for
  ``compute_score_async`` and for batches: in a pool of helper processes (`configure` ``pool_size``,
  default the CPU count). Helpers are plain ``subprocess`` children, so they also start inside daemonic
  processes and never re-run the caller's ``__main__``. No lock is held across a verification; a helper
  that overruns its item's budget by ``GRACE_S`` is killed and replaced in the background, so a slow item
  delays nobody else beyond its own timeout.
* If helpers cannot start, verification runs in this process instead (still time-bounded where Python
  allows) and a WARNING says why and how to fix it. Every answer that could not be verified is counted
  (`reward_stats`, and ``"unverified"`` with ``report_unverified=True``); it is never a silent -1.

``timeout_s=None`` gives Math-Verify's own per-stage timeouts only (the released code's behaviour), with a
hard limit of ``NO_TIMEOUT_HARD_LIMIT_S`` off the main thread.

Modules (by concern): `inputs` (what a caller passes), `verdict` (Math-Verify as the released code calls it,
and the fast path), `stats` (counters, warnings), `bounded` (the in-process bound), `helper` (the helper
process), `channel` (the parent's end of one helper), `pool` (the helper pool), `api` (routing and the entry
points below). The public names are all importable from ``minimal_rl.reward``.
"""

from __future__ import annotations

from minimal_rl.reward.api import (
    DEFAULT_TIMEOUT_S,
    SCORE_MAPPINGS,
    compute_score,
    compute_score_async,
    configure,
    is_correct,
    math_verify_reward,
    reward_stats,
    score_from_correct,
    verify_many,
)
from minimal_rl.reward.bounded import GRACE_S
from minimal_rl.reward.channel import HELPER_START_TIMEOUT_S
from minimal_rl.reward.inputs import completion_text, ground_truth_answers, last_boxed
from minimal_rl.reward.pool import (
    NO_TIMEOUT_HARD_LIMIT_S,
    OVERFLOW_AFTER_S,
    HelperPool,
    default_pool_size,
    get_pool,
    shutdown,
    warm_up,
)
from minimal_rl.reward.stats import UNVERIFIED_STATUSES
from minimal_rl.reward.verdict import FAST_PATH_MAX_CHARS, fast_verdict, math_verify_verdict

__all__ = [
    "DEFAULT_TIMEOUT_S", "FAST_PATH_MAX_CHARS", "GRACE_S", "HELPER_START_TIMEOUT_S", "HelperPool",
    "NO_TIMEOUT_HARD_LIMIT_S", "OVERFLOW_AFTER_S", "SCORE_MAPPINGS", "UNVERIFIED_STATUSES", "completion_text",
    "compute_score", "compute_score_async", "configure", "default_pool_size", "fast_verdict", "get_pool",
    "ground_truth_answers", "is_correct", "last_boxed", "math_verify_reward", "math_verify_verdict", "reward_stats",
    "score_from_correct", "shutdown", "verify_many", "warm_up",
]
