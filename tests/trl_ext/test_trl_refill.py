"""refill=True (DAPO-style dynamic sampling) in the trl_ext trainers, on the tiny offline model.

The reward is a fixed table (a completion's score depends on its prompt and its position in the group), so which
groups are uniform is known by hand. The refill stream draws whole generation batches from a seeded reshuffle of the
train dataset; the datasets below hold exactly G prompts (G = groups per generation batch), so one refill round
draws every one of them once, whatever the shuffle: the outcome is hand-checkable without knowing the order.
"""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset, IterableDataset
from mrl_testing import HAND_WEIGHTS, NUM_GENERATIONS, S3, build_model, make_fixed_reward, tiny_config

from minimal_rl.filtering import DEFAULT_MAX_REFILL_BATCHES, RefillLimitError
from minimal_rl.metrics import PREFIX, REFILL, SHARED, TRL_ONLY
from trl_ext import FilteredGRPOConfig, RaftConfig, ReinforceRejConfig, SampleSelectionConfig, build_trainer

N = NUM_GENERATIONS
TABLE = {
    "U0": [0.0] * 4,  # all wrong: rejected whole by drop_uniform and by RAFT's drop_wrong
    "U1": [1.0] * 4,  # all correct: rejected whole by drop_uniform
    "M1": [1.0, 0.0, 0.0, 0.0],
    "M2": [1.0, 1.0, 0.0, 0.0],
    "M3": [1.0, 1.0, 1.0, 0.0],
    "M2M2M2": [1.0, 1.0, 0.0, 0.0],  # a longer prompt: merging it with short ones changes the padded width
}


def counting_reward(table):
    """The fixed reward, counting its calls (one per generation round on one process)."""
    reward = make_fixed_reward(table)
    calls = []

    def fixed_reward(prompts, completions, **kwargs):
        calls.append(list(prompts))
        return reward(prompts, completions, **kwargs)

    fixed_reward.calls = calls
    return fixed_reward


def make_trainer(algorithm, tokenizer, output_dir, dataset_prompts, batch_groups=2, model=None, reward=None,
                 sample_filter=None, **overrides):
    dataset = Dataset.from_dict({"prompt": list(dataset_prompts)})
    overrides.setdefault("per_device_train_batch_size", N * batch_groups)
    overrides.setdefault("refill", True)
    config = tiny_config(dict, output_dir, **overrides)
    trainer = build_trainer(
        algorithm, model if model is not None else build_model(tokenizer), reward or counting_reward(TABLE),
        config=config, sample_filter=sample_filter, train_dataset=dataset, processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps
    trainer.model.train()
    return trainer


def rows(prompts):
    return [{"prompt": p} for p in prompts for _ in range(N)]


def batch_prompts(trainer, batch):
    texts = trainer.processing_class.batch_decode(batch["prompt_ids"], skip_special_tokens=True)
    return [t.replace(" ", "") for t in texts]


def metric(trainer, name):
    return trainer._metrics["train"][PREFIX + name][-1]


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "config_class, overrides, message",
    [
        # Reinforce's own filter is "none": nothing would ever be refilled
        (ReinforceRejConfig, {"algorithm": "reinforce", "refill": True}, "filter 'none' .* rejects none"),
        (ReinforceRejConfig, {"sample_filter": "none", "loss_type": "grpo", "refill": True}, "rejects none"),
        (FilteredGRPOConfig, {"sample_filter": "none", "refill": True}, "rejects none"),
        (ReinforceRejConfig, {"algorithm": "reinforce_ada_balance", "refill": True, "round_repeat": 4},
         "refill=True is not supported with 'reinforce_ada_balance'"),
        (ReinforceRejConfig, {"refill": True, "max_refill_batches": -1}, "max_refill_batches must be >= 0"),
        (RaftConfig, {"max_refill_batches": 2}, "max_refill_batches applies to refill=True only"),
    ],
)
def test_config_refuses_refill_settings_that_cannot_work(tmp_path, config_class, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(config_class, tmp_path, **overrides)


def test_config_defaults(tmp_path):
    config = tiny_config(ReinforceRejConfig, tmp_path)
    assert (config.refill, config.max_refill_batches) == (False, DEFAULT_MAX_REFILL_BATCHES) == (False, 8)
    for field_name in ("refill", "max_refill_batches"):
        field = ReinforceRejConfig.__dataclass_fields__[field_name]
        assert field.metadata["help"] and f"{field_name} (`" in SampleSelectionConfig.__doc__


def test_refill_needs_a_map_style_dataset(tmp_path, tiny_tokenizer):
    config = tiny_config(dict, tmp_path, refill=True, max_steps=1)
    stream = IterableDataset.from_generator(lambda: iter([{"prompt": "M1"}]))
    with pytest.raises(ValueError, match="refill=True needs a map-style train_dataset"):
        build_trainer("reinforce_rej", build_model(tiny_tokenizer), make_fixed_reward(TABLE), config=config,
                      train_dataset=stream, processing_class=tiny_tokenizer)


# ---------------------------------------------------------------------------------------------- refill


def test_uniform_group_is_replaced_by_a_new_prompt(tmp_path, tiny_tokenizer):
    """Batch [U0, M2]: U0 is uniform, so one refill round draws the dataset's two prompts [U0, M2] (in some order),
    of which M2 has signal: the batch becomes M2 (original) + M2 (refill), 2 groups, as given."""
    reward = counting_reward(TABLE)
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, ["U0", "M2"], reward=reward)
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(rows(["U0", "M2"]))
    assert len(reward.calls) == 2  # the original batch and one refill round
    assert sorted(reward.calls[1]) == ["M2"] * 4 + ["U0"] * 4
    assert batch_prompts(trainer, batch) == ["M2"] * 8
    assert batch["advantages"].tolist() == [1.0, 1.0, -1.0, -1.0] * 2  # Reinforce-Rej, k = 2
    assert bool(batch["tool_mask"].any(dim=1).all())
    loss_mask = batch["completion_mask"] * batch["tool_mask"]
    assert batch["num_items_in_batch"].item() == loss_mask.sum().item()
    # refill metrics: 1 round of G = 2 prompts; the shared ones over the 16 responses generated
    assert [metric(trainer, n) for n in ("refill_calls", "refill_prompts", "refill_batches")] == [1.0, 2.0, 1.0]
    assert metric(trainer, "groups_generated") == 4.0
    assert metric(trainer, "groups_all_wrong") == 0.5 and metric(trainer, "groups_mixed") == 0.5
    assert metric(trainer, "accuracy_before_filter") == pytest.approx(4 / 16)
    assert metric(trainer, "samples_kept") == 8.0 and metric(trainer, "samples_kept_frac") == 0.5
    assert metric(trainer, "tokens_kept") == float(loss_mask.sum())
    # the completions table (TRL keeps the latest generation batch's rows: the refill round's) flags the kept rows
    # (TRL 1.14.2 decodes the tiny tokenizer's prompts with spaces between tokens: "M 2")
    table_prompts = [str(p).replace(" ", "") for p in trainer._logs["prompt"]]
    assert sorted(table_prompts) == ["M2"] * 4 + ["U0"] * 4
    assert list(trainer._logs["extra"]["kept"]) == [p == "M2" for p in table_prompts]


def test_extra_signal_groups_are_trimmed_to_the_batch_size(tmp_path, tiny_tokenizer):
    """Batch [U1, M1]: the refill round draws [M2, M3] in some order, both with signal, one more than needed: the
    first one drawn joins M1 and the other is generated, logged, and not trained on."""
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, ["M2", "M3"])
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(rows(["U1", "M1"]))
    prompts = batch_prompts(trainer, batch)
    assert prompts[:4] == ["M1"] * 4 and prompts[4:] in (["M2"] * 4, ["M3"] * 4)
    k = 2 if prompts[4] == "M2" else 3
    assert batch["advantages"].tolist() == HAND_WEIGHTS["reinforce_rej"][1] + HAND_WEIGHTS["reinforce_rej"][k]
    assert metric(trainer, "groups_generated") == 4.0 and metric(trainer, "groups_mixed") == 0.75
    assert metric(trainer, "samples_kept") == 8.0  # 2 groups of 4, not the trimmed third
    assert [metric(trainer, n) for n in ("refill_calls", "refill_prompts", "refill_batches")] == [1.0, 2.0, 1.0]


def test_grpo_advantages_of_every_round_are_kept(tmp_path, tiny_tokenizer):
    """FilteredGRPO keeps TRL's advantages, computed per round: M2's +-sqrt(3)/2 and M1's (+1.5, -0.5 x 3)."""
    trainer = make_trainer("grpo", tiny_tokenizer, tmp_path, ["M1", "U0"], sample_filter="drop_uniform")
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(rows(["U1", "M2"]))
    assert batch_prompts(trainer, batch) == ["M2"] * 4 + ["M1"] * 4
    expected = [S3, S3, -S3, -S3, 1.5, -0.5, -0.5, -0.5]
    assert batch["advantages"].tolist() == pytest.approx(expected, abs=1e-3)  # TRL divides by std + 1e-4


def test_merged_rows_keep_their_old_log_probs(tmp_path, tiny_tokenizer):
    """num_iterations=2 makes TRL store old log-probs per round; after M1 (a 2-token prompt, round 1) and M2M2M2
    (6 tokens, the refill round) are merged into one batch with a wider left padding, the model still gives each
    completion token the log-prob stored for it."""
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, ["M2M2M2", "U0"], num_iterations=2)
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(rows(["U0", "M1"]))
    assert batch_prompts(trainer, batch) == ["M1"] * 4 + ["M2M2M2"] * 4
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        logps = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, batch["completion_ids"].size(1))[0]
    tokens = batch["completion_mask"].bool()
    torch.testing.assert_close(logps[tokens], batch["old_per_token_logps"][tokens], rtol=0, atol=1e-5)


@pytest.mark.parametrize("hard_drop", [False, True])
def test_raft_refill_composes_with_hard_drop(tmp_path, tiny_tokenizer, hard_drop):
    """RAFT: U0 (all wrong) is rejected whole and refilled by M3 (refill draws [M3, U0]); the wrong answers inside
    the kept groups M1 and M3 are still masked (or, hard drop, removed): 1 + 3 = 4 rows trained."""
    trainer = make_trainer("raft", tiny_tokenizer, tmp_path, ["M3", "U0"], hard_drop=hard_drop)
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(rows(["M1", "U0"]))
    kept = batch["tool_mask"].any(dim=1)
    prompts = batch_prompts(trainer, batch)
    assert sorted(p for p, k in zip(prompts, kept.tolist()) if k) == ["M1", "M3", "M3", "M3"]
    assert int(kept.sum()) == 4 and metric(trainer, "samples_kept") == 4.0
    assert batch["advantages"][kept].tolist() == [1.0] * 4
    if hard_drop:
        assert len(prompts) == 4 and metric(trainer, "filler_rows") == 0.0
    else:
        assert prompts == ["M1"] * 4 + ["M3"] * 4


def test_no_refill_when_every_group_has_signal_leaves_the_batch_unchanged(tmp_path, tiny_tokenizer):
    model = build_model(tiny_tokenizer)
    batches = {}
    for refill in (False, True):
        reward = counting_reward(TABLE)
        trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path / str(refill), ["U0", "U1"],
                               model=copy.deepcopy(model), reward=reward, refill=refill)
        torch.manual_seed(0)
        batches[refill] = trainer._generate_and_score_completions(rows(["M1", "M2"]))
        assert len(reward.calls) == 1
        refill_logged = {k for k in trainer._metrics["train"] if k.removeprefix(PREFIX) in REFILL}
        if refill:
            assert [metric(trainer, n) for n in ("refill_calls", "refill_prompts", "refill_batches")] == [0.0] * 3
        else:
            assert refill_logged == set()  # refill=False logs no refill metric
    assert batches[False].keys() == batches[True].keys()
    for key, value in batches[False].items():
        torch.testing.assert_close(batches[True][key], value, msg=key)


@pytest.mark.parametrize("max_refill_batches", [0, 2])
def test_cap_raises_refill_limit_error_after_max_refill_batches_rounds(tmp_path, tiny_tokenizer, max_refill_batches):
    """Every prompt uniform: the step gives up after the original batch and max_refill_batches rounds."""
    reward = counting_reward(TABLE)
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, ["U0", "U1"], reward=reward,
                           max_refill_batches=max_refill_batches)
    torch.manual_seed(0)
    with pytest.raises(RefillLimitError, match=rf"0 of 2 groups .* after {max_refill_batches} refill round\(s\)"):
        trainer._generate_and_score_completions(rows(["U0", "U1"]))
    assert len(reward.calls) == 1 + max_refill_batches


def test_evaluation_never_refills(tmp_path, tiny_tokenizer):
    reward = counting_reward(TABLE)
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, ["M1", "M2"], reward=reward)
    trainer.model.eval()
    batch = trainer._generate_and_score_completions(rows(["U0", "M2"]))
    assert len(reward.calls) == 1 and batch_prompts(trainer, batch) == ["U0"] * 4 + ["M2"] * 4
    assert not any("refill" in key for key in trainer._metrics["eval"])


@pytest.mark.parametrize("hard_drop", [False, True])
def test_one_training_step_with_refill_logs_the_refill_metrics(tmp_path, tiny_tokenizer, hard_drop):
    """Through Trainer.train with two micro-batches per generation: the dataloader's batch is [U0, M2] (no
    shuffle), one refill round, and exactly the shared + refill metric names are logged."""
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, ["U0", "M2"], per_device_train_batch_size=4,
                           gradient_accumulation_steps=2, hard_drop=hard_drop)
    assert trainer.args.steps_per_generation == 2
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logs = trainer.state.log_history[0]
    ours = {k.removeprefix(PREFIX) for k in logs if k.startswith(PREFIX)}
    assert ours == ({*SHARED, *REFILL, *TRL_ONLY} if hard_drop else {*SHARED, *REFILL})
    assert [logs[PREFIX + n] for n in ("refill_calls", "refill_prompts", "refill_batches")] == [1.0, 2.0, 1.0]
    assert logs[PREFIX + "samples_kept"] == 8.0 and logs[PREFIX + "groups_generated"] == 4.0
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
