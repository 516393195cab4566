"""Speed of minimal-rl's verl advantage estimators against verl's built-in ``grpo`` and
``grpo_vectorized`` on a paper-scale batch, all called through verl's registry in one process.

Batch: 1024 prompts x 4 responses, 3072 response tokens, uid strings like verl's (uuid4), ragged
response lengths, the score on the last valid token, responses of a prompt laid out contiguously as
verl's ``repeat(interleave=True)`` does. Median over repetitions; ratios to ``grpo_vectorized``.

    python benchmarks/weights.py [--prompts 1024] [--n 4] [--tokens 3072] [--reps 30] [--shuffle]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def make_batch(prompts: int, n: int, tokens: int, shuffle: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    uids = np.array([str(uuid.UUID(int=int(rng.integers(2**63)) << 64 | int(rng.integers(2**63)), version=4)) for _ in range(prompts)], dtype=object)
    uids = np.repeat(uids, n)
    bs = prompts * n
    lengths = torch.from_numpy(rng.integers(1, tokens + 1, size=bs))
    mask = (torch.arange(tokens)[None, :] < lengths[:, None]).to(torch.float32)
    correct = torch.from_numpy(rng.random(bs) < 0.5)
    rewards = torch.zeros(bs, tokens)
    rewards[torch.arange(bs), lengths - 1] = correct.float()  # Math-Verify's 0/1 on the last token
    if shuffle:
        perm = torch.from_numpy(rng.permutation(bs))
        rewards, mask, uids = rewards[perm], mask[perm], uids[perm.numpy()]
    return rewards, mask, uids


def time_estimator(fn, rewards, mask, uids, config, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(token_level_rewards=rewards, response_mask=mask, index=uids, config=config)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=1024)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=3072)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--shuffle", action="store_true", help="responses of a prompt not contiguous")
    args = parser.parse_args()

    import verl  # noqa: F401  (registers minimal-rl through the verl.plugins entry point)
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    rewards, mask, uids = make_batch(args.prompts, args.n, args.tokens, args.shuffle)
    for name in ("grpo", "grpo_vectorized", "reinforce_rej", "raft"):  # warm-up
        get_adv_estimator_fn(name)(token_level_rewards=rewards, response_mask=mask, index=uids, config=None)
    config = OmegaConf.create({"adv_estimator": "x", "norm_adv_by_std_in_grpo": True, "minimal_rl": {}})
    names = ["grpo", "grpo_vectorized", "reinforce_rej", "raft"]
    # one call of each estimator per round, interleaved, so machine noise hits all of them alike
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.reps):
        for name in names:
            if name == "grpo" and round_ % 5:  # the python-loop baseline is slow: sample it less
                continue
            samples[name].append(time_estimator(get_adv_estimator_fn(name), rewards, mask, uids, config, 1))
    medians = {name: statistics.median(v) for name, v in samples.items()}

    # The grouping part alone (no (bs, T) sum and broadcast, which are the same memory-bound code in
    # every estimator and dominate the noise): verl's as_torch_index + group_mean_std vs our
    # compute_weights.
    from verl.utils.groupwise import as_torch_index, group_mean_std

    from minimal_rl.algorithms import compute_weights

    scores = rewards.sum(dim=-1)

    def verl_grouping():
        g = as_torch_index(uids, device=scores.device)
        return group_mean_std(scores, g, eps=0.0, device=scores.device)

    core = {"verl grouping (as_torch_index + group_mean_std)": verl_grouping}
    core["minimal_rl compute_weights(reinforce_rej)"] = lambda: compute_weights(scores, "reinforce_rej", group_ids=uids)
    core_medians = {}
    for label, fn in core.items():
        fn()
        times = []
        for _ in range(max(args.reps, 50)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        core_medians[label] = statistics.median(times)
    base = medians["grpo_vectorized"]
    print(
        f"batch: {args.prompts} prompts x {args.n} responses, {args.tokens} tokens, "
        f"{'shuffled' if args.shuffle else 'contiguous'} groups, torch threads {torch.get_num_threads()}"
    )
    print(f"| estimator | median ms | x grpo_vectorized |\n|---|---:|---:|")
    for name in names:
        print(f"| {name} | {medians[name] * 1e3:.2f} | {medians[name] / base:.2f} |")
    core_base = core_medians["verl grouping (as_torch_index + group_mean_std)"]
    print("\n| grouping only | median ms | x verl grouping |\n|---|---:|---:|")
    for label, value in core_medians.items():
        print(f"| {label} | {value * 1e3:.3f} | {value / core_base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
