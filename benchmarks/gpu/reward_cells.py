"""The reward cells of the GPU benchmark: minimal_rl's reward on the machine's cores vs Math-Verify direct.

The scorers are benchmarks/reward.py's own (imported, not copied); only the responses differ: the MATH /
GSM8K files of ../shared/data do not travel to a lent machine, so the responses are synthetic MATH-style
ones in the same mix (correct, wrong, equivalent forms, two boxes, no box, a few pathological ones).
"""

from __future__ import annotations

import importlib.util
import logging
import random
import sys
import time
from pathlib import Path

_REWARD_BENCH = Path(__file__).resolve().parents[1] / "reward.py"


def reward_bench():
    """benchmarks/reward.py as a module (benchmarks/ is no package)."""
    name = "minimal_rl_reward_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _REWARD_BENCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _gold(rng: random.Random) -> str:
    a, b = rng.randint(2, 99), rng.randint(2, 40)
    return rng.choice([
        str(rng.randint(-500, 5000)),
        f"\\frac{{{a}}}{{{b}}}" if a % b else f"\\frac{{{a}}}{{{b + 1}}}",
        f"{a}\\sqrt{{{rng.choice([2, 3, 5, 7])}}}",
        f"{a}.{rng.randint(1, 9)}",
        f"{a}\\pi",
        f"({a}, {b})",
        f"x^2 + {a}x + {b}",
    ])


def synthetic_responses(n: int, pathological: int, seed: int = 0) -> list[tuple[str, str]]:
    """(response, gold) pairs in benchmarks/reward.py's mix, pathological ones spread out."""
    bench = reward_bench()
    rng = random.Random(seed)
    endings = ["The final answer is $\\boxed{{{}}}$.", "Therefore, the answer is \\[\\boxed{{{}}}\\]",
               "\\boxed{{{}}}", "So the answer is $\\boxed{{{}}}$, as required."]
    out: list[tuple[str, str]] = []
    for i in range(max(0, n - pathological)):
        gold = _gold(rng)
        body = (f"Problem {i}: let $x$ be the unknown. Rewriting the condition gives $2x + {i % 7} = {i % 7 + 4}$, "
                f"so $x = 2$ and $\\frac{{x^2 + 1}}{{x}} = \\frac{{5}}{{2}}$. Checking the cases $x = 0$ and $x = 1$ "
                "rules them out.")
        kind = rng.random()
        if kind < 0.40:
            text = f"{body}\n\n" + rng.choice(endings).format(gold)
        elif kind < 0.70:
            text = f"{body}\n\n" + rng.choice(endings).format(_gold(rng))
        elif kind < 0.85:
            text = f"{body}\n\n" + rng.choice(endings).format(bench._equivalent(gold, rng))
        elif kind < 0.93:
            text = f"{body}\n\nI first get \\boxed{{{_gold(rng)}}} and finally \\boxed{{{gold}}}."
        else:
            text = f"{body}\n\nI could not finish the computation."
        out.append((text, gold))
    for j in range(min(pathological, n)):
        out.insert((j + 1) * len(out) // (pathological + 1), bench.PATHOLOGICAL[j % len(bench.PATHOLOGICAL)])
    return out


def run_reward_cells(n: int, pathological: int, threads: int, timeout_s: float, deadline: float, results, make):
    """Append one CellResult per scorer (`make(**fields)` builds one); skip the rest past `deadline`."""
    from minimal_rl import reward

    bench = reward_bench()
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    pairs = synthetic_responses(n, pathological)
    # Not timed: imports, the LaTeX grammar's tables and sympy's lazy set-up for each kind of answer, in this
    # process and in every helper, on responses of other golds (the timed ones stay uncached): the steady
    # state of a training run, whose helpers live as long as the trainer.
    warm_pairs = synthetic_responses(8 * threads, 0, seed=1)
    bench.run_math_verify_direct(warm_pairs)
    bench.run_ours_main(warm_pairs, timeout_s)

    def fresh(helpers: bool):
        reward.shutdown()
        reward.configure()
        if helpers:
            reward.warm_up()
            bench.run_ours_threads(warm_pairs, timeout_s, threads)

    scorers = [
        ("Math-Verify direct, 1 thread", lambda: bench.run_math_verify_direct(pairs), None),
        ("ours, 1 thread", lambda: bench.run_ours_main(pairs, timeout_s), False),
        (f"ours, {threads} threads", lambda: bench.run_ours_threads(pairs, timeout_s, threads), True),
        ("ours, async (gather)", lambda: bench.run_ours_async(pairs, timeout_s), True),
    ]
    done: dict[str, tuple[float, list]] = {}
    estimate = 0.0
    for label, run, helpers in scorers:
        if time.monotonic() + estimate > deadline:
            results.append(make(section="reward", cell=label, size="-", status="skipped: deadline"))
            continue
        try:
            if helpers is not None:
                fresh(helpers)
            start = time.perf_counter()
            verdicts, _ = run()
            elapsed = time.perf_counter() - start
        except Exception as exc:  # one broken scorer must not cost the other cells
            results.append(make(section="reward", cell=label, size="-", status=f"error: {type(exc).__name__}: {exc}"[:200]))
            continue
        estimate = max(estimate, elapsed)
        done[label] = (elapsed, verdicts)
    reward.shutdown()

    base = done.get("Math-Verify direct, 1 thread")
    one = done.get("ours, 1 thread")
    for label, _, _ in scorers:
        if label not in done:
            continue
        elapsed, verdicts = done[label]
        row = make(section="reward", cell=label, size="-", rows=len(pairs), step_s=elapsed,
                   rate=len(pairs) / elapsed)
        if base and label != "Math-Verify direct, 1 thread":
            row.ratio = base[0] / elapsed  # throughput, x Math-Verify direct
            row.target = "≥ 1.00× MV"
            row.met = row.ratio >= 1.0
            same = sum(float(a) == float(b) for a, b in zip(verdicts, base[1]))
            row.extra["same_verdicts_as_math_verify"] = f"{same}/{len(pairs)}"
        if one and label == f"ours, {threads} threads":
            scaling = one[0] / elapsed
            row.extra["x_ours_1_thread"] = scaling
            row.target = f"≥ {0.8 * threads:.1f}× ours 1 thread"
            row.met = scaling >= 0.8 * threads
        results.append(row)
