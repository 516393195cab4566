"""trl_ext.main_job.build_trainer: each `minimal-rl train --algorithm` name runs the trainer and the
config the paper's algorithm needs (the end-to-end runs are in tests/minimal_rl/test_main_job_cli.py)."""

from __future__ import annotations

import pytest
from datasets import Dataset

from trl_ext.main_job import TRAINABLE, RecordingReward, TrainSettings, build_trainer

# algorithm -> (trainer class, importance sampling, upper clip epsilon_high, algorithm field)
EXPECTED = {
    "raft": ("RaftTrainer", False, 0.2, None),
    "raft_pp": ("RaftTrainer", True, 0.2, None),
    "raft_pp_no_clip": ("RaftTrainer", True, 1e9, None),  # finding 3: importance sampling without clipping
    "reinforce": ("ReinforceRejTrainer", None, 0.2, "reinforce"),
    "reinforce_rej": ("ReinforceRejTrainer", None, 0.2, "reinforce_rej"),
    "reinforce_rej_std": ("ReinforceRejTrainer", None, 0.2, "reinforce_rej_std"),
    "reinforce_remove_all_wrong": ("ReinforceRejTrainer", None, 0.2, "reinforce_remove_all_wrong"),
    "reinforce_remove_all_correct": ("ReinforceRejTrainer", None, 0.2, "reinforce_remove_all_correct"),
    "reinforce_mean_zero": ("ReinforceRejTrainer", None, 0.2, "reinforce_mean_zero"),
    "grpo": ("GRPOTrainer", None, 0.2, None),
}


def test_every_trainable_algorithm_is_mapped():
    assert sorted(EXPECTED) == sorted(TRAINABLE)


@pytest.mark.parametrize("algorithm", sorted(EXPECTED))
def test_build_trainer_picks_the_papers_trainer_and_clip(algorithm, tiny_tokenizer, tiny_model, tmp_path):
    settings = TrainSettings(algorithm=algorithm, steps=1, prompts_per_step=2, num_generations=2)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "1+1="}]] * 4, "answer": ["2"] * 4})
    trainer = build_trainer(settings, tiny_model, tiny_tokenizer, dataset, tmp_path, RecordingReward())
    cls, importance_sampling, epsilon_high, name = EXPECTED[algorithm]
    assert type(trainer).__name__ == cls
    assert trainer.epsilon_low == 0.2 and trainer.epsilon_high == epsilon_high
    if importance_sampling is not None:
        assert trainer.args.importance_sampling is importance_sampling
    if name is not None:
        assert trainer.args.algorithm == name
    assert trainer.args.loss_type == "dapo"
