"""Reinforce-Ada's adaptive sampling through the TRL trainers (trl_ext/adaptive.py): the kept responses and their
advantages equal the core's `run_rounds` / `pool_baseline` on the same scores, uniform pools are dropped, the round
metrics are logged, and a real `.train()` step moves the weights.

The reward is a fixed table (`mrl_testing.make_pool_reward`): each prompt's responses get the next scores of its
pool, in generation order, so the pools are known in advance. It logs each response's position in its pool
(`log_extra`), so the kept rows can be traced back to the pool. Two processes: two_process_worker_adaptive.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset

from trl_ext import ReinforceRejConfig, build_trainer

from mrl_testing import (
    ADA_MAX_ROUNDS, ADA_POOLS, ADA_ROUND_REPEAT, NUM_GENERATIONS, ada_core_expectation, build_model, make_pool_reward,
    tiny_config,
)

from minimal_rl.metrics import ADAPTIVE, PREFIX, SHARED, metric_key

POOLS, ROUND_REPEAT, MAX_ROUNDS = ADA_POOLS, ADA_ROUND_REPEAT, ADA_MAX_ROUNDS


def make_trainer(algorithm, tokenizer, output_dir, pools=POOLS, **overrides):
    values = dict(
        per_device_train_batch_size=NUM_GENERATIONS * len(pools), round_repeat=ROUND_REPEAT, max_rounds=MAX_ROUNDS,
        loss_type="dapo",
    )
    values.update(overrides)
    trainer = build_trainer(
        algorithm, build_model(tokenizer), make_pool_reward(pools), config=tiny_config(dict, output_dir, **values),
        train_dataset=Dataset.from_dict({"prompt": list(pools)}), processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer


@pytest.mark.parametrize("algorithm", ["reinforce_ada_balance", "reinforce_ada_pos"])
def test_kept_rows_and_advantages_are_the_cores(tmp_path, tiny_tokenizer, algorithm):
    trainer = make_trainer(algorithm, tiny_tokenizer, tmp_path)
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions([{"prompt": p} for p in POOLS for _ in range(NUM_GENERATIONS)])
    rounds, expected = ada_core_expectation(algorithm)

    n = NUM_GENERATIONS
    assert batch["completion_ids"].size(0) == n * len(POOLS)
    positions = list(trainer._logs["extra"]["pool_position"])
    kept_rows = batch["tool_mask"].any(dim=1).tolist()
    for i, (kept_positions, advantages) in enumerate(expected):
        rows = slice(i * n, (i + 1) * n)
        assert positions[rows] == kept_positions
        if advantages is None:  # uniform pool: dropped by drop_uniform
            assert kept_rows[rows] == [False] * n
            assert batch["advantages"][rows].tolist() == [0.0] * n
        else:
            assert kept_rows[rows] == [True] * n
            assert batch["advantages"][rows].tolist() == pytest.approx(advantages)
    if algorithm == "reinforce_ada_balance":  # the pools exercise every path: exit in round 1, round 2, never
        assert [p.exit_round for p in rounds.pools] == [1, 2, None, None]
        assert expected[3][1] == pytest.approx([-1 / 12] * 3 + [1 - 1 / 12])  # the baseline is the pool's 1/12
    else:  # B's first round is all correct: it exits with a signal for Ada-pos, but its pool is uniform
        assert [p.exit_round for p in rounds.pools] == [1, 1, None, 1]

    metrics = trainer._metrics["train"]
    for name, value in rounds.metrics().items():
        assert metrics[metric_key(name)] == [pytest.approx(value)], name
    generated = sum(len(p.correct) for p in rounds.pools)
    mixed = sum(advantages is not None for _, advantages in expected)
    assert mixed == {"reinforce_ada_balance": 3, "reinforce_ada_pos": 2}[algorithm]
    assert metrics[metric_key("generated_per_kept")] == [pytest.approx(generated / (mixed * n))]
    assert metrics[metric_key("uniform_pools_frac")] == [1 - mixed / len(POOLS)]
    assert metrics[metric_key("samples_kept")] == [mixed * n]
    ours = {k.removeprefix(PREFIX) for k in metrics if k.startswith(PREFIX)}
    rounds_run = {f"active_prompts/round_{k}" for k in range(1, len(rounds.active_per_round) + 1)}
    assert ours == (set(SHARED) | set(ADAPTIVE) | rounds_run) - {"active_prompts/round_{k}"}


def test_the_reward_functions_score_each_response_once(tmp_path, tiny_tokenizer):
    trainer = make_trainer("reinforce_ada_balance", tiny_tokenizer, tmp_path)
    trainer._generate_and_score_completions([{"prompt": p} for p in POOLS for _ in range(NUM_GENERATIONS)])
    assert trainer.reward_funcs[0].calls == [16, 12, 8]  # round 1: 4 prompts, round 2: B, C, D, round 3: C, D


def test_a_train_step_moves_the_weights_and_logs_the_round_metrics(tmp_path, tiny_tokenizer):
    trainer = make_trainer("reinforce_ada_balance", tiny_tokenizer, tmp_path, max_steps=1)
    before = copy.deepcopy(trainer.model.state_dict())
    trainer.train()
    moved = [name for name, value in trainer.model.state_dict().items() if not torch.equal(value, before[name])]
    assert moved
    logged = trainer.state.log_history[0]
    assert logged[metric_key("rounds")] == 3.0
    assert logged[metric_key("active_prompts/round_1")] == 4.0
    assert logged[metric_key("active_prompts/round_3")] == 2.0
    assert logged[metric_key("exited_with_signal_frac")] == 0.5


def test_settings_the_rounds_cannot_honour_are_refused(tmp_path):
    with pytest.raises(ValueError, match="round_repeat=2 must be >= num_generations=4"):
        tiny_config(ReinforceRejConfig, tmp_path, algorithm="reinforce_ada_pos", round_repeat=2, loss_type="dapo")
    with pytest.raises(ValueError, match="apply to adaptive sampling only"):
        tiny_config(ReinforceRejConfig, tmp_path, algorithm="reinforce_rej", max_rounds=2, loss_type="dapo")
    with pytest.raises(ValueError, match="max_rounds must be >= 1"):
        tiny_config(ReinforceRejConfig, tmp_path, algorithm="reinforce_ada_pos", max_rounds=0, loss_type="dapo")


def _fake_trainer(**overrides):
    values = dict(
        args=type("A", (), {"use_vllm": True, "vllm_mode": "server", "algorithm": "reinforce_ada_pos"})(),
        accelerator=type("Acc", (), {"num_processes": 2})(), rollout_func=None, tools=None, environment_factories=None,
        train_dataset=type("D", (), {"column_names": ["prompt", "answer"]})(),
    )
    values.update(overrides)
    return type("Fake", (), values)()


def test_vllm_is_accepted_and_multi_turn_generation_refused_with_adaptive_sampling():
    from trl_ext import adaptive

    adaptive.check_adaptive_supported(_fake_trainer())  # vLLM (server or colocate) on several processes: fine
    with pytest.raises(ValueError, match=r"single-turn generation \(transformers or vLLM\) only; not with: a "
                                         r"rollout_func \(it generates whole groups") as refusal:
        adaptive.check_adaptive_supported(_fake_trainer(rollout_func=lambda prompts, trainer: {}))
    assert "reinforce_rej" in str(refusal.value)
    with pytest.raises(ValueError, match="not with: tools or environments"):
        adaptive.check_adaptive_supported(_fake_trainer(tools=[print]))
    images = type("D", (), {"column_names": ["prompt", "image", "answer"]})()
    with pytest.raises(ValueError, match="not with: image prompts"):
        adaptive.check_adaptive_supported(_fake_trainer(train_dataset=images))


def test_hard_drop_gives_the_masked_gradient(tmp_path, tiny_tokenizer):
    model = build_model(tiny_tokenizer)
    batches, gradients = {}, {}
    for hard_drop in (False, True):
        trainer = make_trainer("reinforce_ada_balance", tiny_tokenizer, tmp_path / str(hard_drop), hard_drop=hard_drop)
        trainer.model.load_state_dict(model.state_dict())
        torch.manual_seed(3)
        batch = trainer._generate_and_score_completions([{"prompt": p} for p in POOLS for _ in range(NUM_GENERATIONS)])
        trainer.model.zero_grad()
        trainer.compute_loss(trainer.model, batch).backward()
        batches[hard_drop] = batch
        gradients[hard_drop] = {k: p.grad.clone() for k, p in trainer.model.named_parameters() if p.grad is not None}
    assert batches[True]["completion_ids"].size(0) == 3 * NUM_GENERATIONS  # the uniform pool's rows are gone
    assert batches[True]["num_items_in_batch"] == batches[False]["num_items_in_batch"]
    assert gradients[False].keys() == gradients[True].keys()
    assert any(float(grad.abs().max()) > 0 for grad in gradients[False].values())
    for name, grad in gradients[False].items():
        torch.testing.assert_close(grad, gradients[True][name], rtol=1e-4, atol=1e-7, msg=name)


def test_evaluation_samples_a_fixed_group(tmp_path, tiny_tokenizer):
    """Evaluation generates num_generations_eval responses per prompt as GRPOTrainer does (no rounds): the pool is the
    group."""
    trainer = make_trainer("reinforce_ada_balance", tiny_tokenizer, tmp_path)
    trainer.model.eval()
    batch = trainer._generate_and_score_completions([{"prompt": p} for p in POOLS for _ in range(NUM_GENERATIONS)])
    assert trainer.reward_funcs[0].calls == [16]
    assert batch["completion_ids"].size(0) == 16 and metric_key("rounds") not in trainer._metrics["eval"]
