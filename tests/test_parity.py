"""Cross-framework parity: the same scores and group ids give the same weights in verl and in TRL.

verl side: the registered estimator, looked up by name through verl's own registry after a plain
`import verl` (the `verl.plugins` entry point registers it), on a batch whose groups are shuffled and
identified by uid strings. TRL side: the trainer's real `_generate_and_score_completions` on a tiny
model, with a reward function that returns the same scores. verl's estimators run in "zero" mode, so a
rejected sample is one with weight 0 there; TRL leaves it out of the loss mask.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("verl")
pytest.importorskip("trl")

import mrl_testing as h  # noqa: E402

from minimal_rl.table import ALGORITHMS, SAMPLE_FILTERS  # noqa: E402

N = 4
NUM_GROUPS = 12
# Every algorithm whose weights verl_ext computes (GRPO's are verl's own; neither host samples Reinforce-Ada's rounds
# yet), with its own filter and two others.
CASES = [(name, None) for name, spec in ALGORITHMS.items() if spec.family != "grpo" and not spec.adaptive]
CASES += [("reinforce", "drop_all_wrong"), ("raft_pp", "drop_uniform"), ("reinforce_mean_zero", "drop_all_correct")]


def score_table(seed: int, binary: bool = False) -> dict[str, list[float]]:
    """12 prompts x 4 scores in {0, 0.5, 1} (``binary``: 0.5 -> 1): every group kind, the first three forced
    uniform/mixed."""
    g = torch.Generator().manual_seed(seed)
    scores = (torch.randint(0, 3, (NUM_GROUPS, N), generator=g).float() / 2.0).tolist()
    scores[0], scores[1], scores[2] = [1.0] * N, [0.0] * N, [1.0, 0.0, 0.5, 0.0]
    if binary:
        scores = [[float(s > 0) for s in row] for row in scores]
    return {f"P{i}:": row for i, row in enumerate(scores)}


def verl_weights(algorithm: str, scores: torch.Tensor, uids: list[str], options: dict) -> torch.Tensor:
    import verl  # noqa: F401  (loads the minimal-rl plugin)
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    length = 5
    response_mask = torch.ones(len(scores), length)
    response_mask[::3, 3:] = 0  # uneven response lengths
    last = response_mask.sum(-1).long() - 1
    token_level_rewards = torch.zeros(len(scores), length)
    token_level_rewards[torch.arange(len(scores)), last] = scores  # verl puts the score on the last token
    fn = get_adv_estimator_fn(ALGORITHMS[algorithm].estimator)
    advantages, returns = fn(
        token_level_rewards=token_level_rewards,
        response_mask=response_mask,
        index=uids,
        config={"minimal_rl": options},
    )
    weights = advantages[torch.arange(len(scores)), 0]
    torch.testing.assert_close(advantages, weights.unsqueeze(1) * response_mask)  # broadcast over tokens
    return weights


# The default threshold only fits a binary reward; {0, 0.5, 1} needs an explicit one (tests/minimal_rl/test_filtering.py).
OPTIONS = [{}, {"positive_threshold": 0.5}, {"reward_mapping": "raw", "positive_threshold": 0.0}]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "threshold", "raw"])
@pytest.mark.parametrize("algorithm, sample_filter", CASES)
def test_verl_and_trl_give_identical_weights_and_keep_masks(tmp_path, algorithm, sample_filter, options):
    from datasets import Dataset

    from trl_ext import build_trainer

    table = score_table(seed=len(algorithm), binary=not options)
    # TRL: the trainer's own generation-and-scoring step, groups contiguous as TRL lays them out.
    tokenizer = h.build_tokenizer()
    config = h.tiny_config(dict, tmp_path, per_device_train_batch_size=N * NUM_GROUPS, **options)
    trainer = build_trainer(
        algorithm, h.build_model(tokenizer), h.make_fixed_reward(table), config=config, sample_filter=sample_filter,
        train_dataset=Dataset.from_dict({"prompt": list(table)}), processing_class=tokenizer,
    )
    trainer.model.train()
    rows = [{"prompt": p} for p in table for _ in range(N)]
    batch = trainer._generate_and_score_completions(rows)
    trl_weights = batch["advantages"].float()
    trl_keep = batch["tool_mask"].any(dim=1)

    # verl: the same scores, groups shuffled through the batch and named by uid strings.
    verl_options = {**options, **({"sample_filter": sample_filter} if sample_filter else {})}
    scores = torch.tensor([table[r["prompt"]][i % N] for i, r in enumerate(rows)])
    uids = [f"uid-{r['prompt']}" for r in rows]
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))
    verl_perm = verl_weights(algorithm, scores[perm], [uids[i] for i in perm], verl_options)
    verl_w = torch.empty_like(verl_perm)
    verl_w[perm] = verl_perm

    torch.testing.assert_close(verl_w, trl_weights, rtol=0, atol=1e-6)
    assert torch.all(verl_w[~trl_keep] == 0), "a sample TRL leaves out has a non-zero weight in verl"
    # The keep masks both frameworks apply come from the same place; check it against the spec's rules.
    threshold = options.get("positive_threshold", 0.0)
    kinds = {p: (sum(s > threshold for s in v)) for p, v in table.items()}
    chosen = sample_filter or ALGORITHMS[algorithm].sample_filter
    assert chosen in SAMPLE_FILTERS
    for i, r in enumerate(rows):
        k = kinds[r["prompt"]]
        correct = table[r["prompt"]][i % N] > threshold
        expected_keep = {
            "none": True, "drop_wrong": correct, "drop_uniform": 0 < k < N, "drop_all_wrong": k > 0,
            "drop_all_correct": k < N,
        }[chosen]
        assert bool(trl_keep[i]) == expected_keep, (r["prompt"], i, algorithm)
