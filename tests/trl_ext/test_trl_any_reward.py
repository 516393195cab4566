"""trl_ext with rewards that are not verifiers (a reward model's scores, a length reward), the loud warning when a
filter keeps nothing, and Reinforce-Ada's rows (adaptive sampling) with such rewards."""

from __future__ import annotations

import logging

import pytest
import torch
from datasets import Dataset

from trl_ext import FilteredGRPOConfig, RaftConfig, ReinforceRejConfig, build_trainer

from mrl_testing import NUM_GENERATIONS, build_model, make_fixed_reward, tiny_config

from minimal_rl.metrics import metric_key
from minimal_rl.table import EXIT_RULES, algorithms_of

# One prompt per row: a reward model's scores (-1.6 ... -4.2) and length-like scores, 4 responses each.
REWARD_MODEL = {"A:": [-1.6, -2.0, -4.2, -3.1], "B:": [-2.5, -2.5, -2.5, -2.5], "C:": [-1.9, -1.7, -3.3, -2.2]}
LENGTHS = {"A:": [7.0, 12.0, 3.0, 9.0], "B:": [5.0, 5.0, 5.0, 5.0], "C:": [1.0, 30.0, 2.0, 2.0]}
ADAPTIVE = [name for name in algorithms_of("reinforce") if name.startswith("reinforce_ada")]


def make_trainer(algorithm, tokenizer, output_dir, table, reward=None, sample_filter=None, **overrides):
    config = tiny_config(dict, output_dir, per_device_train_batch_size=NUM_GENERATIONS * len(table), **overrides)
    trainer = build_trainer(
        algorithm, build_model(tokenizer), reward or make_fixed_reward(table), config=config,
        sample_filter=sample_filter, train_dataset=Dataset.from_dict({"prompt": list(table)}),
        processing_class=tokenizer,
    )
    trainer.model.train()
    return trainer


def generate(trainer, table):
    torch.manual_seed(0)
    return trainer._generate_and_score_completions([{"prompt": p} for p in table for _ in range(NUM_GENERATIONS)])


def kept(batch):
    return batch["tool_mask"].any(dim=1).tolist()


@pytest.mark.parametrize("table", [REWARD_MODEL, LENGTHS], ids=["reward_model", "length"])
def test_grpo_drop_uniform_keeps_the_groups_whose_rewards_differ(tmp_path, tiny_tokenizer, table):
    trainer = make_trainer("grpo", tiny_tokenizer, tmp_path, table, sample_filter="drop_uniform", loss_type="dapo")
    batch = generate(trainer, table)
    assert kept(batch) == [True] * 4 + [False] * 4 + [True] * 4
    assert trainer._metrics["train"][metric_key("samples_kept_frac")][-1] == pytest.approx(8 / 12)


def test_grpo_drop_uniform_with_a_real_length_reward_trains_like_the_issue_says(tmp_path, tiny_tokenizer):
    """len(completion) as reward: every response is "correct" (> 0); GRPO sees a reward std and so must the filter
    (before: samples_kept_frac = 0 at every step)."""

    seen = []

    def length_reward(completions, **kwargs):
        seen.extend(float(len(c)) for c in completions)
        return seen[-len(completions):]

    table = {"Q1:": None, "Q2:": None, "Q3:": None}
    trainer = make_trainer("grpo", tiny_tokenizer, tmp_path, table, reward=length_reward,
                           sample_filter="drop_uniform", loss_type="dapo", max_completion_length=12)
    batch = generate(trainer, table)
    lengths = torch.tensor(seen).view(-1, NUM_GENERATIONS)
    differs = [bool(row.unique().numel() > 1) for row in lengths]
    assert any(differs)
    assert kept(batch) == [d for d in differs for _ in range(NUM_GENERATIONS)]


@pytest.mark.parametrize("algorithm", ["raft", "reinforce_rej"])
def test_a_reward_model_without_a_threshold_is_refused_with_its_range(tmp_path, tiny_tokenizer, algorithm):
    trainer = make_trainer(algorithm, tiny_tokenizer, tmp_path, REWARD_MODEL)
    with pytest.raises(ValueError, match=r"not binary \(this batch: -4\.2 … -1\.6.*positive_threshold"):
        generate(trainer, REWARD_MODEL)


def test_raft_with_a_threshold_that_fits_the_reward_model(tmp_path, tiny_tokenizer):
    trainer = make_trainer("raft", tiny_tokenizer, tmp_path, REWARD_MODEL, positive_threshold=-2.1)
    batch = generate(trainer, REWARD_MODEL)
    assert kept(batch) == [True, True, False, False, False, False, False, False, True, True, False, False]


def test_a_filter_that_keeps_nothing_is_said_loudly(tmp_path, tiny_tokenizer, caplog):
    """The threshold is set but does not fit: RAFT keeps nothing, step after step; the run says so, with the range."""
    trainer = make_trainer("raft", tiny_tokenizer, tmp_path, REWARD_MODEL, positive_threshold=0.0)
    with caplog.at_level(logging.WARNING, logger="minimal_rl.filtering"):
        for _ in range(3):
            assert not any(kept(generate(trainer, REWARD_MODEL)))
    messages = [r.getMessage() for r in caplog.records if "kept NO sample" in r.getMessage()]
    assert len(messages) == 1
    assert "(trl)" in messages[0] and "'drop_wrong'" in messages[0] and "-4.2 … -1.6" in messages[0]


@pytest.mark.parametrize("algorithm", ADAPTIVE)
def test_reinforce_ada_with_a_reward_model_needs_a_threshold_and_only_its_family_config(tmp_path, tiny_tokenizer, algorithm):
    """Reinforce-Ada's exit rule counts correct responses: a reward model's scores without a threshold are refused at
    the first round, with their range; the Ada rows train with ReinforceRejConfig (their family's) only."""
    assert len(ADAPTIVE) == len(EXIT_RULES)
    trainer = make_trainer(algorithm, tiny_tokenizer, tmp_path, REWARD_MODEL, loss_type="dapo")
    with pytest.raises(ValueError, match=r"not binary \(this batch: -4\.2 … -1\.6.*positive_threshold"):
        generate(trainer, REWARD_MODEL)
    assert tiny_config(ReinforceRejConfig, tmp_path, algorithm=algorithm, loss_type="dapo").samples_adaptively
    for config_class in (RaftConfig, FilteredGRPOConfig):
        with pytest.raises(ValueError, match="algorithm must be one of"):
            tiny_config(config_class, tmp_path, algorithm=algorithm, loss_type="dapo")
