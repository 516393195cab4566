"""Speed and time bound of minimal-rl's reward against Math-Verify called directly and verl's built-in.

4096 MATH-style responses (1024 real MATH500 / GSM8K problems x 4 responses: correct, wrong, equivalent
forms, two boxes, no box, and a few pathological ones) scored, in one run and side by side, by

* ours, main thread          ``compute_score`` called in a loop (TRL, scripts)
* ours, main thread, no fast ``configure(fast_path=False)``: every answer through Math-Verify (what the fast path saves)
* ours, N threads            ``compute_score`` from a thread pool: verl 0.9's ``run_in_executor`` pattern
* ours, async                ``compute_score_async`` for every response at once under asyncio.gather (verl's
                             reward loop awaits it directly)
* verl reward loop           verl 0.9's own ``NaiveRewardManager.run_single`` for every response at once, with
                             ``name=compute_score_async`` (awaited) and ``name=compute_score`` (its executor)
* Math-Verify direct         the released code's call (``math_metric``, gold boxed) on one thread
* verl built-in              ``verl.utils.reward_score.math_verify.compute_score`` from N threads (its own pool
                             of 4 spawned processes; ``--verl-n`` limits it to the first responses)

The machine's own parallelism is measured in the same run (the same pure-Python loop in 1 and in
``cores`` processes at once), because a shared machine rarely gives a process all of its cores.

Each scorer runs ``--repeats`` times, interleaved; the table keeps each one's fastest repeat. Every timed
run starts with cold caches for its problems: our gold cache and sympy's cache emptied in this process, our
helpers restarted, pebble's pool re-forked (a forked worker would otherwise inherit everything this process
parsed before); verl's pool is warmed up first and keeps its workers (its caches stay warm across repeats).
Every process starts with warm parsers: this one and each new helper verify ``WARM_UP_PER_PROCESS`` answers
to other problems before the clock (a new process's first few hundred answers are slower while Math-Verify's
LaTeX parser builds its tables, which a training run pays once: without this, the helpers paid it in every
timed run and the main thread never did).

Two mixes, one table each, in one run: ``boxed`` (answers in ``\\boxed{}``) and ``text`` (answers in running
text, no box: Math-Verify reads the whole response; the fast path answers none). Where pebble is installed,
the library alternative the reward's pool was weighed against (pebble's ProcessPool, forked workers, its
per-task timeout) runs too. The load average is printed with every table.

    python benchmarks/reward.py [--n 4096] [--mix boxed,text] [--threads 8] [--repeats 3] [--timeout 5] [--verl-n N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

WARM_UP_PER_PROCESS = 128  # untimed answers (other problems) each process verifies before the clock
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PATHOLOGICAL = [  # the first one runs into every timeout
    ("We expand the power tower. \\boxed{9^{9^{9^{9}}}}", "9^{9^{9^{8}}}"),  # sympy runs for minutes
    ("So the answer is \\boxed{" + "1" * 4301 + "}", "7"),  # over Python's int-to-str limit
    ("\\frac{1}{(((((" * 20000 + " so \\boxed{3}", "3"),  # degenerate repetition, 280 kB
    ("Expanding: \\boxed{(x+1)^{200} - (x-1)^{200}}", "2"),  # a slow symbolic comparison
]


def warm_up_responses(data_dir: Path, n: int, mix: str) -> list[tuple[str, str]]:
    """``n`` responses of the same kinds on other problems than any timed run's (the tail of the same shuffled
    rows), for warming a process's parsers before the clock."""
    rows = sum(len((data_dir / f"{name}.jsonl").read_text().splitlines()) for name in ("math500", "gsm8k"))
    return make_responses(data_dir, 4 * rows, 0, mix=mix)[-n:]


def _body(row: dict, rng: random.Random) -> str:
    if row.get("solution"):  # GSM8K: the worked solution, without its final line
        return row["solution"].split("####")[0].strip()
    problem = row["problem"]
    steps = [
        f"We are asked the following: {problem[:400]}",
        "Let $x$ denote the unknown quantity. Rewriting the condition, we get $2x + 3 = 7$, so $x = 2$.",
        "Substituting back, $\\frac{x^2 + 1}{x} = \\frac{5}{2}$, which is consistent with the constraints.",
        "Checking the boundary cases $x = 0$ and $x = 1$ rules them out.",
    ]
    return "\n\n".join(steps[: rng.randint(2, 4)])


def _equivalent(answer: str, rng: random.Random) -> str:
    a = answer.strip()
    if a.lstrip("-").isdigit():
        n = int(a)
        return rng.choice([f"{n}.0", f"{n:,}" if abs(n) >= 1000 else f"\\frac{{{2 * n}}}{{2}}", f"{n}.00"])
    if a.startswith("\\frac{") or a.startswith("\\dfrac{"):
        return a.replace("\\frac", "\\dfrac") if a.startswith("\\frac") else a.replace("\\dfrac", "\\frac")
    return a


def make_responses(data_dir: Path, n: int, pathological: int = 4, seed: int = 0, mix: str = "boxed") -> list[tuple[str, str]]:
    """(response, gold) pairs: 4 responses per problem, mixed kinds, pathological ones spread out.

    mix "boxed": answers in ``\\boxed{}`` (a trained model's format); "text": answers in running text, no box
    (held-out responses of a model that does not box: Math-Verify reads the whole response, and the fast
    path answers none of them)."""
    rng = random.Random(seed)
    rows = []
    for name in ("math500", "gsm8k"):
        path = data_dir / f"{name}.jsonl"
        if not path.exists():
            raise SystemExit(f"benchmark data not found: {path} (use --data)")
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    rng.shuffle(rows)
    endings = ["The final answer is $\\boxed{{{}}}$.", "Therefore, the answer is \\[\\boxed{{{}}}\\]",
               "\\boxed{{{}}}", "So the answer is $\\boxed{{{}}}$, as required."]
    if mix == "text":
        endings = ["The final answer is ${}$.", "Therefore, the answer is \\[{}\\]", "So we get ${}$ in the end.",
                   "So the answer is ${}$, as required."]
    out: list[tuple[str, str]] = []
    for i in range(n - pathological):
        row = rows[(i // 4) % len(rows)]
        gold, body = row["answer"], _body(row, rng)
        kind = rng.random()
        if kind < 0.40:
            text = f"{body}\n\n" + rng.choice(endings).format(gold)
        elif kind < 0.70:
            text = f"{body}\n\n" + rng.choice(endings).format(rng.choice(rows)["answer"])
        elif kind < 0.85:
            text = f"{body}\n\n" + rng.choice(endings).format(_equivalent(gold, rng))
        elif kind < 0.93 and mix == "text":
            text = f"{body}\n\nI first get ${rng.choice(rows)['answer']}$ and finally ${gold}$."
        elif kind < 0.93:
            text = f"{body}\n\nI first get \\boxed{{{rng.choice(rows)['answer']}}} and finally \\boxed{{{gold}}}."
        else:
            text = f"{body}\n\nI could not finish the computation."
        out.append((text, gold))
    for j in range(pathological):
        out.insert((j + 1) * len(out) // (pathological + 1), PATHOLOGICAL[j % len(PATHOLOGICAL)])
    return out


class Timer:
    """Wall time of each call, for the time-bound check."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls.append(time.perf_counter() - start)

        return timed


def run_ours_main(pairs, timeout):
    from minimal_rl.reward import compute_score

    timer = Timer()
    score = timer.wrap(compute_score)
    return [score("bench", s, g, timeout_s=timeout)["acc"] for s, g in pairs], timer.calls


def run_ours_threads(pairs, timeout, threads):
    from minimal_rl.reward import compute_score

    timer = Timer()
    score = timer.wrap(compute_score)
    with ThreadPoolExecutor(threads) as executor:
        return list(executor.map(lambda p: score("bench", p[0], p[1], timeout_s=timeout)["acc"], pairs)), timer.calls


def run_ours_async(pairs, timeout):
    from minimal_rl.reward import compute_score_async

    calls: list[float] = []

    async def one(s, g):
        # time from when the event loop starts this task (verl creates all tasks at once: the queue wait
        # for a helper is part of it)
        start = time.perf_counter()
        result = await compute_score_async("bench", s, g, timeout_s=timeout)
        calls.append(time.perf_counter() - start)
        return result["acc"]

    async def main():
        return await asyncio.gather(*[one(s, g) for s, g in pairs])

    return asyncio.run(main()), calls


class _CharTokenizer:
    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(map(chr, ids.tolist()))


def verl_reward_loop(name: str, timeout: float):
    """(manager, items): verl's naive reward manager as load_reward_manager builds it for our function, and
    the responses as one-row DataProto items (characters as token ids)."""
    from pathlib import Path as _Path

    import verl
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.reward import load_reward_manager

    config_dir = str(_Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose("ppo_trainer", overrides=[
            "reward.custom_reward_function.path=pkg://minimal_rl.reward",
            f"reward.custom_reward_function.name={name}",
            f"+reward.custom_reward_function.reward_kwargs.timeout_s={timeout}",
        ])
    return load_reward_manager(cfg, _CharTokenizer())


def make_verl_items(pairs):
    import numpy as np
    import torch
    from verl import DataProto

    items = []
    for text, gold in pairs:
        ids = torch.tensor([ord(c) for c in text] or [32], dtype=torch.int32)
        items.append(DataProto.from_dict(
            tensors={"prompts": torch.ones(1, 1, dtype=torch.int32), "responses": ids[None],
                     "attention_mask": torch.ones(1, 1 + len(ids), dtype=torch.int32)},
            non_tensors={"data_source": np.array(["math"], dtype=object),
                         "reward_model": np.array([{"ground_truth": gold}], dtype=object),
                         "extra_info": np.array([{}], dtype=object)},
        ))
    return items


def run_verl_loop(manager, items):
    calls: list[float] = []

    async def one(item):
        start = time.perf_counter()
        out = await manager.run_single(item)
        calls.append(time.perf_counter() - start)
        return max(0.0, out["reward_score"])

    async def main():
        return await asyncio.gather(*[one(item) for item in items])

    return manager.loop.run_until_complete(main()), calls


def run_math_verify_direct(pairs):
    """The released code: math_metric (gold boxed, Latex; prediction Expr + Latex), any exception -> 0."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig
    from math_verify.metric import math_metric

    timer = Timer()

    def score(solution, gold):
        metric = math_metric(gold_extraction_target=(LatexExtractionConfig(),),
                             pred_extraction_target=(ExprExtractionConfig(), LatexExtractionConfig()))
        try:
            return float(metric(["\\boxed{" + gold + "}"], [solution])[0])
        except Exception:
            return 0.0

    score = timer.wrap(score)
    return [score(s, g) for s, g in pairs], timer.calls


def run_verl_builtin(pairs, threads):
    from verl.utils.reward_score.math_verify import compute_score

    timer = Timer()
    score = timer.wrap(compute_score)
    with ThreadPoolExecutor(threads) as executor:
        return list(executor.map(lambda p: float(score(p[0], p[1])), pairs)), timer.calls


_SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(4_000_000):\n    x += i * i\n"


def machine_parallelism(processes: int) -> float:
    """Throughput of `processes` CPU-bound Python processes at once, relative to one alone."""
    import subprocess

    def wall(n: int) -> float:
        start = time.perf_counter()
        for proc in [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(n)]:
            proc.wait()
        return time.perf_counter() - start

    return processes * wall(1) / wall(processes)


def make_pebble_pool(workers: int):
    """The library alternative (issue 20's sketch): pebble's ProcessPool, forked workers, a per-task timeout
    that kills the worker (SIGTERM) and replaces it. None when pebble is not installed."""
    try:
        import multiprocessing

        from pebble import ProcessPool
    except ImportError:
        return None
    return ProcessPool(max_workers=workers, context=multiprocessing.get_context("fork"))


def run_pebble_threads(pool, pairs, timeout, threads):
    """Our inputs and fast path in the caller, Math-Verify in pebble's workers (with its own timeouts and
    a per-worker gold cache: `verify_on_main_thread` with no bound of ours), from ``threads`` threads."""
    from minimal_rl.reward.bounded import verify_on_main_thread
    from minimal_rl.reward.inputs import completion_text, ground_truth_answers
    from minimal_rl.reward.verdict import fast_verdict

    timer = Timer()

    def score(pair):
        text, golds = completion_text(pair[0]), ground_truth_answers(pair[1])
        fast = [fast_verdict(text, g) for g in golds]
        if True in fast:
            return 1.0
        rest = [g for g, v in zip(golds, fast) if v is None]
        if not rest:
            return 0.0
        try:
            return float(pool.schedule(verify_on_main_thread, args=(text, rest, None), timeout=timeout).result()[0])
        except Exception:  # its TimeoutError, a worker that died
            return 0.0

    score = timer.wrap(score)
    with ThreadPoolExecutor(threads) as executor:
        return list(executor.map(score, pairs)), timer.calls


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096, help="responses per mix (default 4096: 1024 prompts x 4)")
    parser.add_argument("--mix", default="boxed,text",
                        help="comma-separated response mixes, one table each: boxed (answers in \\boxed{}), text "
                             "(answers in running text, no box) (default both)")
    parser.add_argument("--threads", type=int, default=8, help="threads for the executor pattern (default 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=5.0, help="our timeout_s (default 5)")
    parser.add_argument("--verl-n", type=int, default=None, help="responses for verl's built-in (default all; 0: skip)")
    parser.add_argument("--pathological", type=int, default=4)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip", default="", help="comma-separated scorer keys to leave out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tables = [f"load average (1, 5, 15 min) at the start: {load_average()}; {cores} CPU cores"]
    for mix in filter(None, args.mix.split(",")):
        tables += ["", f"### mix: {mix}", ""] + run_mix(args, mix, cores)
    tables.append(f"load average at the end: {load_average()}")
    print("\n".join(tables))
    return 0


def run_mix(args, mix: str, cores: int) -> list[str]:
    from minimal_rl import reward
    from minimal_rl.reward.verdict import LOCAL_GOLD_CACHE

    pairs = make_responses(args.data, args.n, args.pathological, mix=mix)
    verl_pairs = pairs if args.verl_n is None else pairs[: args.verl_n]
    skip = set(filter(None, args.skip.split(",")))

    def cold() -> None:
        """No scorer starts with what an earlier one parsed: our gold cache and sympy's own cache (which a
        forked worker would inherit) emptied in this process."""
        from sympy.core.cache import clear_cache

        LOCAL_GOLD_CACHE.clear()
        clear_cache()

    warm = warm_up_responses(args.data, WARM_UP_PER_PROCESS * reward.default_pool_size(), mix)

    def fresh_pool(fast_path=True, helpers=True):
        """Cold caches for every timed run of ours; when the run uses helpers, new ones started and warmed (not
        timed) with answers to other problems, as this process's parsers are warm from the untimed warm-up:
        a new process's first few hundred answers are slower (Math-Verify's LaTeX parser builds its tables),
        which a training run pays once, not per step."""
        reward.shutdown()
        reward.configure(fast_path=fast_path)
        if helpers:
            reward.warm_up()
            reward.verify_many([s for s, _ in warm], [g for _, g in warm], timeout_s=args.timeout)
        cold()

    pebble_holder: list = [None if "pebble" in skip else make_pebble_pool(reward.default_pool_size())]
    pebble_pool = pebble_holder[0]

    def fresh_pebble() -> None:
        """A new pebble pool for every timed run (its workers fork from this process with cold caches),
        its workers started before the clock."""
        pebble_holder[0].stop()
        pebble_holder[0].join()
        cold()
        pebble_holder[0] = make_pebble_pool(reward.default_pool_size())
        for future in [pebble_holder[0].schedule(abs, args=(-1,)) for _ in range(8)]:
            future.result()
    scorers = {
        "ours_main": ("ours, main thread", "in process", lambda: run_ours_main(pairs, args.timeout),
                      lambda: fresh_pool(helpers=False)),
        "ours_main_nofast": ("ours, main thread, fast path off", "in process",
                             lambda: run_ours_main(pairs, args.timeout), lambda: fresh_pool(False, helpers=False)),
        "ours_threads": (f"ours, {args.threads} threads", "helpers", lambda: run_ours_threads(pairs, args.timeout, args.threads),
                         lambda: fresh_pool()),
        "ours_async": ("ours, async (gather)", "helpers", lambda: run_ours_async(pairs, args.timeout), lambda: fresh_pool()),
        "mv_direct": ("Math-Verify direct, 1 thread", "in process", lambda: run_math_verify_direct(pairs), cold),
        "verl": (f"verl built-in, {args.threads} threads", "its 4 spawned workers",
                 lambda: run_verl_builtin(verl_pairs, args.threads), lambda: None),
    }
    if pebble_pool is not None:
        scorers["pebble"] = (f"pebble ProcessPool sketch, {args.threads} threads", "pebble's forked workers",
                             lambda: run_pebble_threads(pebble_holder[0], pairs, args.timeout, args.threads), fresh_pebble)
    if args.verl_n == 0:
        skip.add("verl")
    try:
        import verl  # noqa: F401
    except ImportError:
        skip |= {"verl", "verl_loop_async", "verl_loop_sync"}
    if not {"verl_loop_async", "verl_loop_sync"} <= skip:
        items = make_verl_items(pairs)
        managers = {name: verl_reward_loop(name, args.timeout) for name in ("compute_score_async", "compute_score")}
        scorers["verl_loop_async"] = ("verl reward loop, compute_score_async", "helpers",
                                      lambda: run_verl_loop(managers["compute_score_async"], items), lambda: fresh_pool())
        scorers["verl_loop_sync"] = ("verl reward loop, compute_score", "helpers",
                                     lambda: run_verl_loop(managers["compute_score"], items), lambda: fresh_pool())
    scorers = {k: v for k, v in scorers.items() if k not in skip}
    # not timed: first imports and the LaTeX grammar's tables in this process, verl's 4 spawn workers
    # (started lazily, each importing verl), pebble's forked workers
    reward.is_correct("$\\boxed{\\frac{1}{2}}$", "0.5")
    run_math_verify_direct(warm[:WARM_UP_PER_PROCESS])
    if "verl" in scorers:
        run_verl_builtin(verl_pairs[: 4 * args.threads], args.threads)
    if "pebble" in scorers:
        run_pebble_threads(pebble_pool, pairs[: 4 * args.threads], args.timeout, args.threads)

    best: dict[str, tuple[float, list, list, float]] = {}
    parallelism = []
    load_start = load_average()
    for rep in range(args.repeats):
        parallelism.append(machine_parallelism(cores))
        for key, (_, _, run, prepare) in scorers.items():
            prepare()
            reward.reward_stats(reset=True)
            start = time.perf_counter()
            verdicts, calls = run()
            elapsed = time.perf_counter() - start
            max_verify = reward.reward_stats()["max_verify_s"]
            print(f"  {mix} repeat {rep + 1} {key}: {elapsed:.2f} s (load {load_average()})", file=sys.stderr, flush=True)
            if key not in best or elapsed < best[key][0]:
                best[key] = (elapsed, verdicts, calls, max_verify)
    reward.configure()
    reward.shutdown()
    if pebble_holder[0] is not None:
        pebble_holder[0].stop()
        pebble_holder[0].join()

    reference = best.get("mv_direct")
    base = len(pairs) / reference[0] if reference else None
    one_thread = len(pairs) / best["ours_main"][0] if "ours_main" in best else None
    stats_fast = sum(reward.fast_verdict(reward.completion_text(s), g) is not None for s, g in pairs)
    lines = [
        f"{len(pairs)} responses ({args.pathological} pathological), timeout {args.timeout:g} s, fastest of "
        f"{args.repeats}; the fast path answers {stats_fast} of them ({100 * stats_fast / len(pairs):.0f}%); "
        f"load average {load_start} before the first repeat, {load_average()} after the last",
        "",
        "| scorer | where Math-Verify runs | responses | time (s) | responses/s | × Math-Verify direct | × ours main thread "
        "| max call (s) | calls > timeout + 1 s | same verdicts as Math-Verify direct |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, (label, where, _, _) in scorers.items():
        elapsed, verdicts, calls, max_verify = best[key]
        n = len(verdicts)
        rate = n / elapsed
        agree = "—"
        if reference and key != "mv_direct":
            same = sum(float(a) == float(b) for a, b in zip(verdicts, reference[1][:n]))
            agree = f"{same}/{n}"
        # async: every call is created at once (as verl does), so its wall time includes the queue; the
        # bound that matters is the verification's own (dispatch to verdict)
        queued = key in ("ours_async", "verl_loop_async", "verl_loop_sync")
        longest = max_verify if queued else max(calls)
        over = int(max_verify > args.timeout + 1) if queued else sum(c > args.timeout + 1 for c in calls)
        longest_text = f"{longest:.2f}" + (" (verification)" if queued else "")
        ratios = f"{rate / base:.2f}× | {rate / one_thread:.2f}×" if base and one_thread else " | "
        lines.append(f"| {label} | {where} | {n} | {elapsed:.2f} | {rate:.0f} | {ratios} | {longest_text} | {over} | {agree} |")
    lines += ["", f"machine: {cores} CPU processes at once gave {max(parallelism):.2f}× one process's throughput "
              f"(best of {len(parallelism)}: {', '.join(f'{p:.2f}' for p in parallelism)})"]
    if "ours_threads" in best and one_thread:
        threads_rate = len(pairs) / best["ours_threads"][0]
        verdict = "met" if threads_rate >= one_thread else "NOT met"
        lines.append(f"{args.threads} threads / main thread = {threads_rate / one_thread:.2f}× (target: not slower, ≥ 1.00×: "
                     f"{verdict}; ceiling about {cores}×)")
        longest = max(best["ours_threads"][2])
        verdict = "met" if longest <= 2 * args.timeout + 1 else "NOT met"
        lines.append(f"{args.threads} threads: longest call (queue wait + verification) {longest:.2f} s (target ≤ own bound "
                     f"+ one item's bound + 1 s = {2 * args.timeout + 1:g} s: {verdict})")
    if "ours_main_nofast" in best and one_thread:
        lines.append(f"fast path: main thread {best['ours_main_nofast'][0]:.2f} s without it, {best['ours_main'][0]:.2f} s "
                     f"with it ({100 * (1 - best['ours_main'][0] / best['ours_main_nofast'][0]):.0f}% saved)")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
