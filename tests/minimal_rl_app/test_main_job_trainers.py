"""minimal_rl_app.main_job.build_run_trainer: each `minimal-rl train --algorithm` name runs the trainer and the
config the paper's algorithm needs (the end-to-end runs are in tests/minimal_rl_app/test_main_job_cli.py)."""

from __future__ import annotations

import pytest
from datasets import Dataset

from minimal_rl_app.main_job import TRAINABLE, RecordingReward, TrainSettings, build_run_trainer

# algorithm -> (trainer class, upper clip epsilon_high, sample filter in effect): the paper's rows, by hand.
EXPECTED = {
    "raft": ("RaftTrainer", 0.2, "drop_wrong"),
    "raft_pp": ("RaftTrainer", 0.2, "drop_wrong"),
    "raft_pp_clip_higher": ("RaftTrainer", 0.28, "drop_wrong"),
    "raft_pp_no_clip": ("RaftTrainer", 1e9, "drop_wrong"),  # finding 3: importance sampling without clipping
    "reinforce": ("ReinforceRejTrainer", 0.2, "none"),
    "reinforce_rej": ("ReinforceRejTrainer", 0.2, "drop_uniform"),
    "reinforce_rej_std": ("ReinforceRejTrainer", 0.2, "drop_uniform"),
    "reinforce_remove_all_wrong": ("ReinforceRejTrainer", 0.2, "drop_all_wrong"),
    "reinforce_remove_all_correct": ("ReinforceRejTrainer", 0.2, "drop_all_correct"),
    "reinforce_mean_zero": ("ReinforceRejTrainer", 0.2, "none"),
    # Reinforce-Ada (follow-up): adaptive rounds in trl_ext, uniform pools dropped
    "reinforce_ada_balance": ("ReinforceRejTrainer", 0.2, "drop_uniform"),
    "reinforce_ada_pos": ("ReinforceRejTrainer", 0.2, "drop_uniform"),
    "grpo": ("FilteredGRPOTrainer", 0.2, "none"),  # stock GRPO: GRPO's advantages, nothing filtered
}


def test_every_trainable_algorithm_is_mapped():
    assert sorted(EXPECTED) == sorted(TRAINABLE)


@pytest.mark.parametrize("algorithm", sorted(EXPECTED))
def test_build_run_trainer_picks_the_papers_trainer_and_clip(algorithm, tiny_tokenizer, tiny_model, tmp_path):
    settings = TrainSettings(algorithm=algorithm, steps=1, prompts_per_step=2, num_generations=2)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "1+1="}]] * 4, "answer": ["2"] * 4})
    trainer = build_run_trainer(settings, tiny_model, tiny_tokenizer, dataset, tmp_path, RecordingReward())
    cls, epsilon_high, sample_filter = EXPECTED[algorithm]
    assert type(trainer).__name__ == cls
    assert trainer.epsilon_low == 0.2 and trainer.epsilon_high == epsilon_high
    assert trainer.args.algorithm == algorithm and trainer.args.sample_filter_in_effect == sample_filter
    assert trainer.args.loss_type == "dapo"


def test_a_sample_filter_reaches_the_trainer(tiny_tokenizer, tiny_model, tmp_path):
    settings = TrainSettings(algorithm="grpo", sample_filter="drop_uniform", steps=1, prompts_per_step=2, num_generations=2)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "1+1="}]] * 4, "answer": ["2"] * 4})
    trainer = build_run_trainer(settings, tiny_model, tiny_tokenizer, dataset, tmp_path, RecordingReward())
    assert type(trainer).__name__ == "FilteredGRPOTrainer" and trainer.args.sample_filter == "drop_uniform"
    assert trainer.args.scale_rewards == "group" and trainer.args.hard_drop is True
    with pytest.raises(ValueError, match="unknown sample filter"):
        TrainSettings(algorithm="grpo", sample_filter="drop_some")
