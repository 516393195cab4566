"""RaftTrainer and ReinforceRejTrainer on a tiny random Llama: weights, masks, gradients, edge cases.

Everything runs through TRL's real GRPOTrainer code paths (generation with transformers, reward gathering,
the batch split, the loss); only the reward function is a fixed table so the outcome is deterministic.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import re

import pandas as pd
import pytest
import torch
import trl
from datasets import Dataset
from packaging.version import Version

from trl_ext import RaftConfig, RaftTrainer, ReinforceRejConfig, build_config, build_trainer
from trl_ext.version import SKIP_CHECK_ENV, check_trl_runs_on, check_trl_version


from mrl_testing import (
    HAND_WEIGHTS, NUM_GENERATIONS, PROMPT_CORRECT, build_model, build_tokenizer, make_fixed_reward, tiny_config,
)

from minimal_rl.metrics import PREFIX, SHARED, TRL_ONLY
from minimal_rl.table import ALGORITHMS

# The weights through TRL must be the hand-computed ones of the worked example, for every algorithm the
# trl_ext trainers compute weights for on a fixed group (GRPO keeps TRL's own advantages; Reinforce-Ada's rows sample
# in rounds: tests/trl_ext/test_trl_adaptive.py).
WEIGHTED = sorted(name for name, spec in ALGORITHMS.items() if spec.family != "grpo" and not spec.adaptive)


def make_trainer(algorithm, tokenizer, output_dir, model=None, table=PROMPT_CORRECT, sample_filter=None, **overrides):
    dataset = Dataset.from_dict({"prompt": list(table)})
    model = model if model is not None else build_model(tokenizer)
    overrides.setdefault("per_device_train_batch_size", NUM_GENERATIONS * len(table))
    config = tiny_config(dict, output_dir, **overrides)
    trainer = build_trainer(algorithm, model, make_fixed_reward(table), config=config, sample_filter=sample_filter,
                            train_dataset=dataset, processing_class=tokenizer)
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps  # set by Trainer's loop
    trainer.model.train()
    return trainer


def generation_rows(table=PROMPT_CORRECT):
    """The rows TRL's RepeatSampler hands one process: each prompt num_generations times in a row."""
    return [{"prompt": prompt} for prompt in table for _ in range(NUM_GENERATIONS)]


def generate(trainer, seed=0, table=PROMPT_CORRECT):
    torch.manual_seed(seed)
    return trainer._generate_and_score_completions(generation_rows(table))


def gradient(trainer, batch):
    trainer.model.zero_grad()
    trainer.compute_loss(trainer.model, batch).backward()
    return {name: p.grad.detach().clone() for name, p in trainer.model.named_parameters() if p.grad is not None}


def assert_same_gradients(a, b, rtol=1e-4, atol=1e-7):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=name)


# ---------------------------------------------------------------------------------------------- version pin


def test_version_pin_accepts_1_14_2_to_1_16_x_and_rejects_others(monkeypatch):
    monkeypatch.delenv(SKIP_CHECK_ENV, raising=False)
    for ok in ("1.14.2", "1.14.3", "1.15.0", "1.15.2", "1.16.0", "1.16.7", "1.16.1.dev0", "1.16.0rc1", "1.14.2rc1"):
        check_trl_version(ok)
    for bad in ("1.14.1", "1.14.0", "1.13.0", "1.17.0", "2.0.0", "0.29.1"):
        with pytest.raises(ImportError, match=r"tested with TRL >=1\.14\.2,<1\.17\.0 but TRL " + bad.replace(".", r"\.")):
            check_trl_version(bad)
    with pytest.raises(ImportError, match="cannot parse the TRL version"):
        check_trl_version("one.two")
    monkeypatch.setenv(SKIP_CHECK_ENV, "1")
    check_trl_version("1.17.0")  # downgraded to a warning


def test_trl_1_15_needs_a_triton_device():
    # TRL 1.15.x has log-probs only as a Triton kernel: refused off CUDA / XPU or without triton, whatever the
    # device elsewhere; 1.14.2 and 1.16 compute them with torch on any device.
    for version in ("1.15.0", "1.15.3", "1.15.1rc1"):
        for device, triton in (("cpu", True), ("cpu", False), ("mps", True), ("cuda", False)):
            with pytest.raises(ValueError, match=rf"TRL {re.escape(version)} computes log-probabilities only with"):
                check_trl_runs_on(device, version, triton_available=triton)
        check_trl_runs_on("cuda", version, triton_available=True)
        check_trl_runs_on("xpu", version, triton_available=True)
    for version in ("1.14.2", "1.16.0", "1.16.4"):
        check_trl_runs_on("cpu", version, triton_available=False)


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "config_class, overrides, message",
    [
        (ReinforceRejConfig, {"scale_rewards": "group"}, "scale_rewards='group' is not supported"),
        (ReinforceRejConfig, {"scale_rewards": True}, "scale_rewards='group' is not supported"),
        (ReinforceRejConfig, {"loss_type": "grpo"}, "loss_type='grpo' cannot be used with sample filter 'drop_uniform'"),
        (ReinforceRejConfig, {"loss_type": "bnpo"}, "loss_type='bnpo' cannot be used"),
        (RaftConfig, {"loss_type": "dr_grpo"}, "loss_type='dr_grpo' cannot be used with sample filter 'drop_wrong'"),
        (RaftConfig, {"algorithm": "reinforce"}, "RaftConfig.algorithm must be one of"),
        (RaftConfig, {"sample_filter": "drop_some"}, "unknown sample filter"),
        (ReinforceRejConfig, {"algorithm": "grpo"}, "algorithm must be one of"),
        (ReinforceRejConfig, {"algorithm": "raft"}, "algorithm must be one of"),
        (ReinforceRejConfig, {"reward_mapping": "binary"}, "reward_mapping must be one of"),
        (RaftConfig, {"multi_objective_aggregation": "normalize_then_sum"}, "multi_objective_aggregation"),
    ],
)
def test_config_rejects_settings_that_break_the_algorithm(tmp_path, config_class, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(config_class, tmp_path, **overrides)


def test_config_defaults_and_accepted_settings(tmp_path):
    raft = tiny_config(RaftConfig, tmp_path)
    assert (raft.num_generations, raft.scale_rewards, raft.loss_type, raft.algorithm) == (4, "none", "dapo", "raft")
    assert raft.sample_filter_in_effect == "drop_wrong" and raft.epsilon_high is None
    # the clip variants of the table set epsilon_high unless it is given
    assert tiny_config(RaftConfig, tmp_path, algorithm="raft_pp_clip_higher").epsilon_high == 0.28
    assert tiny_config(RaftConfig, tmp_path, algorithm="raft_pp_no_clip").epsilon_high == 1e9
    assert tiny_config(RaftConfig, tmp_path, algorithm="raft_pp_no_clip", epsilon_high=5.0).epsilon_high == 5.0
    rrej = tiny_config(ReinforceRejConfig, tmp_path)
    assert (rrej.algorithm, rrej.reward_mapping, rrej.hard_drop, rrej.positive_threshold) == ("reinforce_rej", "signed", False, None)
    # Nothing is left out by plain Reinforce, so any PPO-clip aggregation is exact.
    assert tiny_config(ReinforceRejConfig, tmp_path, algorithm="reinforce", loss_type="grpo").loss_type == "grpo"
    # a filter that drops needs a drop-exact loss, whatever the algorithm
    with pytest.raises(ValueError, match="sample filter 'drop_all_wrong'"):
        tiny_config(ReinforceRejConfig, tmp_path, algorithm="reinforce", loss_type="grpo", sample_filter="drop_all_wrong")
    assert build_config("grpo", output_dir=str(tmp_path), use_cpu=True).sample_filter == "none"


def test_trainer_rejects_a_plain_grpo_config(tmp_path):
    from trl import GRPOConfig

    tiny_tokenizer = build_tokenizer()  # not the fixture: this check runs before the device check, on TRL 1.15 too

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, per_device_train_batch_size=4, num_generations=4)
    with pytest.raises(TypeError, match="RaftTrainer needs a RaftConfig"):
        RaftTrainer(build_model(tiny_tokenizer), make_fixed_reward(), args=args, processing_class=tiny_tokenizer,
                    train_dataset=Dataset.from_dict({"prompt": list(PROMPT_CORRECT)}))


# ---------------------------------------------------------------------------------------------- weights


@pytest.mark.parametrize("algorithm", WEIGHTED)
def test_worked_example_weights_through_the_trainer(tmp_path, tiny_tokenizer, algorithm):
    trainer = make_trainer(algorithm, tiny_tokenizer, tmp_path)
    batch = generate(trainer)
    rows = generation_rows()
    loss_mask = batch["completion_mask"] * batch["tool_mask"]
    for i, row in enumerate(rows):
        k = int(sum(PROMPT_CORRECT[row["prompt"]]))
        expected = HAND_WEIGHTS[algorithm][k][i % NUM_GENERATIONS]  # correct responses first, as in the table
        assert batch["advantages"][i].item() == pytest.approx(expected or 0.0, abs=1e-5), (k, i)
        assert bool(batch["tool_mask"][i].any()) == (expected is not None), (k, i)
    # the drop-exact losses divide by the kept tokens of the generation batch, not all tokens
    assert batch["num_items_in_batch"].item() == loss_mask.sum().item()
    metrics = trainer._metrics["train"]
    kinds = [metrics[f"sample_filter/groups_{kind}"][-1] for kind in ("all_correct", "all_wrong", "mixed")]
    assert kinds == pytest.approx([0.2, 0.2, 0.6])
    assert metrics["sample_filter/samples_kept"][-1] == float(batch["tool_mask"].any(dim=1).sum())
    assert metrics["sample_filter/tokens_kept"][-1] == float(loss_mask.sum())
    assert metrics["sample_filter/accuracy_before_filter"][-1] == pytest.approx(0.5)
    assert metrics["sample_filter/score_before_filter/mean"][-1] == pytest.approx(0.5)


def test_positive_threshold_and_raw_mapping(tmp_path, tiny_tokenizer):
    # Scores in {-1, +1}: threshold 0 still splits them; raw mapping passes the score through as the weight.
    table = {"a": [1.0, -1.0, -1.0, -1.0], "b": [2.0, 2.0, 0.5, 0.5]}
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, table=table, positive_threshold=1.0, reward_mapping="raw")
    batch = generate(trainer, table=table)
    # a: one correct (1.0 > 1.0 is False -> all wrong -> dropped); b: mixed at threshold 1, raw weights.
    assert batch["advantages"].tolist() == pytest.approx([0, 0, 0, 0, 2.0, 2.0, 0.5, 0.5])


# ---------------------------------------------------------------------------------------------- gradients


def test_raft_gradient_is_nll_of_kept_tokens_and_equals_raft_pp_at_ratio_one(tmp_path, tiny_tokenizer):
    model = build_model(tiny_tokenizer)
    raft = make_trainer("raft", tiny_tokenizer, tmp_path / "raft", model=copy.deepcopy(model))
    raft_pp = make_trainer("raft_pp", tiny_tokenizer, tmp_path / "pp", model=copy.deepcopy(model))
    batch = generate(raft)
    assert "old_per_token_logps" not in batch  # num_iterations=1: GRPOTrainer's ratio is exactly 1
    grad_raft = gradient(raft, batch)
    grad_pp = gradient(raft_pp, batch)
    assert_same_gradients(grad_raft, grad_pp)

    # By hand: mean of -log pi over the kept (correct) tokens of the batch.
    reference = copy.deepcopy(model)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    logits = reference(input_ids=ids, attention_mask=attention).logits[:, batch["prompt_ids"].size(1) - 1 : -1]
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    mask = (batch["completion_mask"] * batch["tool_mask"]).float()
    correct_rows = torch.tensor([PROMPT_CORRECT[r["prompt"]][i % 4] > 0 for i, r in enumerate(generation_rows())])
    assert torch.equal(mask.any(dim=1), correct_rows)
    nll = -(logps * mask).sum() / mask.sum()
    nll.backward()
    by_hand = {name: p.grad for name, p in reference.named_parameters() if p.grad is not None}
    assert_same_gradients(grad_raft, by_hand, rtol=1e-4, atol=1e-6)


def test_raft_gradient_is_the_core_raft_loss(tmp_path, tiny_tokenizer):
    """The RAFT loss is defined once (minimal_rl.algorithms.raft_loss); TRL's ratio-at-1 surrogate must have
    exactly its gradient (token mean over the kept tokens)."""
    from minimal_rl.algorithms import raft_loss

    model = build_model(tiny_tokenizer)
    raft = make_trainer("raft", tiny_tokenizer, tmp_path, model=copy.deepcopy(model))
    batch = generate(raft)
    grad_raft = gradient(raft, batch)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    logits = model(input_ids=ids, attention_mask=attention).logits[:, batch["prompt_ids"].size(1) - 1 : -1]
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    mask = (batch["completion_mask"] * batch["tool_mask"]).float()
    loss = (raft_loss(logps, batch["advantages"].unsqueeze(1)) * mask).sum() / mask.sum()
    loss.backward()
    assert_same_gradients(grad_raft, {n: p.grad for n, p in model.named_parameters() if p.grad is not None})


def test_raft_ignores_the_ratio_when_old_logps_differ(tmp_path, tiny_tokenizer):
    # With stale old log-probs (num_iterations > 1) RAFT++ clips / reweights, RAFT must not.
    model = build_model(tiny_tokenizer)
    raft = make_trainer("raft", tiny_tokenizer, tmp_path / "raft", model=copy.deepcopy(model))
    raft_pp = make_trainer("raft_pp", tiny_tokenizer, tmp_path / "pp", model=copy.deepcopy(model))
    batch = generate(raft)
    fresh = gradient(raft, batch)
    stale = dict(batch, old_per_token_logps=torch.full(batch["completion_ids"].shape, -50.0))
    assert_same_gradients(gradient(raft, stale), fresh)
    clipped = gradient(raft_pp, stale)  # every ratio is far above 1 + epsilon: RAFT++'s gradient vanishes
    assert all(float(g.abs().max()) == 0.0 for g in clipped.values())


def test_raft_pp_without_clipping_weights_every_token_by_its_ratio(tmp_path, tiny_tokenizer):
    # The paper's finding-3 ablation (`minimal-rl train --algorithm raft_pp_no_clip`, verl's
    # raft_pp_no_clip.sh): epsilon_high = 1e9. With old log-probs log 2 below the current ones every ratio
    # is 2 and none is clipped, so the gradient is exactly twice RAFT's; with the default clip it vanishes.
    model = build_model(tiny_tokenizer)
    raft = make_trainer("raft", tiny_tokenizer, tmp_path / "raft", model=copy.deepcopy(model))
    no_clip = make_trainer("raft_pp_no_clip", tiny_tokenizer, tmp_path / "nc", model=copy.deepcopy(model))
    clipped = make_trainer("raft_pp", tiny_tokenizer, tmp_path / "pp", model=copy.deepcopy(model))
    batch = generate(raft)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits[:, batch["prompt_ids"].size(1) - 1 : -1]
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    stale = dict(batch, old_per_token_logps=logps - math.log(2.0))
    twice_raft = {name: 2.0 * g for name, g in gradient(raft, batch).items()}
    assert_same_gradients(gradient(no_clip, stale), twice_raft, rtol=1e-4, atol=1e-6)
    assert all(float(g.abs().max()) == 0.0 for g in gradient(clipped, stale).values())


@pytest.mark.parametrize("algorithm", ["raft", "reinforce_rej"])
def test_mask_and_hard_drop_give_the_same_gradient(tmp_path, tiny_tokenizer, algorithm):
    model = build_model(tiny_tokenizer)
    masked = make_trainer(algorithm, tiny_tokenizer, tmp_path / "mask", model=copy.deepcopy(model))
    dropped = make_trainer(algorithm, tiny_tokenizer, tmp_path / "drop", model=copy.deepcopy(model), hard_drop=True)
    batch_masked, batch_dropped = generate(masked, seed=3), generate(dropped, seed=3)
    kept = int(batch_masked["tool_mask"].any(dim=1).sum())
    assert batch_dropped["completion_ids"].size(0) == kept < batch_masked["completion_ids"].size(0)
    assert batch_dropped["num_items_in_batch"] == batch_masked["num_items_in_batch"]
    assert_same_gradients(gradient(masked, batch_masked), gradient(dropped, batch_dropped))


@pytest.mark.parametrize("algorithm", ["raft", "reinforce_rej"])
def test_mask_and_hard_drop_same_update_through_train_with_micro_batches(tmp_path, tiny_tokenizer, algorithm):
    # Full Trainer loop, 2 micro-batches per optimizer step (TRL shuffles and splits the generation batch):
    # with plain SGD the parameter change is -lr * gradient, which must not depend on the drop mode.
    model = build_model(tiny_tokenizer)
    deltas = {}
    for hard_drop in (False, True):
        trainer = make_trainer(
            algorithm, tiny_tokenizer, tmp_path / str(hard_drop), model=copy.deepcopy(model), hard_drop=hard_drop,
            per_device_train_batch_size=10, gradient_accumulation_steps=2, optim="sgd", learning_rate=1.0,
            lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0,
        )
        trainer.train()
        deltas[hard_drop] = {n: (p.detach() - dict(model.named_parameters())[n].detach()) for n, p in trainer.model.named_parameters()}
        if hard_drop:
            assert trainer.state.log_history[0]["sample_filter/rows_per_rank"] < 20
    assert any(float(d.abs().max()) > 0 for d in deltas[False].values())
    assert_same_gradients(deltas[False], deltas[True], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("hard_drop", [False, True])
def test_logs_exactly_the_metric_vocabulary(tmp_path, tiny_tokenizer, hard_drop):
    """The names of `minimal_rl.metrics`, no other: the shared ones always, the TRL-only ones with a hard drop (the
    adaptive ones only for Reinforce-Ada: tests/trl_ext/test_trl_adaptive.py)."""
    trainer = make_trainer("raft", tiny_tokenizer, tmp_path, hard_drop=hard_drop)
    generate(trainer)
    logged = {k.removeprefix(PREFIX) for k in trainer._metrics["train"] if k.startswith(PREFIX)}
    assert logged == ({*SHARED, *TRL_ONLY} if hard_drop else set(SHARED))
    assert not any(k.startswith("minimal_rl/") for k in trainer._metrics["train"])  # the old names, reduced with min


@pytest.mark.parametrize("algorithm, trainer_name", [
    ("raft", "RaftTrainer"), ("reinforce_rej", "ReinforceRejTrainer"), ("grpo", "FilteredGRPOTrainer"),
])
def test_one_training_step_of_each_trainer(tmp_path, tiny_tokenizer, algorithm, trainer_name):
    # Trainer.train() end to end (on every TRL version the compat target installs): one optimizer step that moves
    # the weights, a finite loss, and the sample filter applied (the worked example keeps 10 / 12 / 12 of 20).
    model = build_model(tiny_tokenizer)
    before = copy.deepcopy(model.state_dict())
    trainer = make_trainer(
        algorithm, tiny_tokenizer, tmp_path, model=model, sample_filter="drop_uniform" if algorithm == "grpo" else None,
        optim="sgd", learning_rate=0.1, max_grad_norm=0.0, weight_decay=0.0,
    )
    assert type(trainer).__name__ == trainer_name
    kept_rows = []
    generate_and_score = trainer._generate_and_score_completions

    def spy(inputs):
        batch = generate_and_score(inputs)
        kept_rows.append(int(batch["tool_mask"].any(dim=1).sum()))
        return batch

    trainer._generate_and_score_completions = spy
    trainer.train()
    assert trainer.state.global_step == 1 and kept_rows == [{"raft": 10, "reinforce_rej": 12, "grpo": 12}[algorithm]]
    loss = trainer.state.log_history[0]["loss"]
    assert math.isfinite(loss)
    if algorithm == "raft":
        assert loss == pytest.approx(-1.0)  # -mean(weight * ratio) with weight 1 and ratio 1 on every kept token
    assert any(not torch.equal(value, before[name]) for name, value in trainer.model.state_dict().items())


# ---------------------------------------------------------------------------------------------- use_liger_kernel

TRL_VERSION = Version(Version(trl.__version__).base_version)
try:  # TRL 1.15.x has log-probs only as a Triton kernel (trl_ext/version.py)
    check_trl_runs_on("cpu")
    LOGPROBS_ON_CPU = True
except ValueError:
    LOGPROBS_ON_CPU = False


@pytest.mark.parametrize("algorithm", ["raft", "reinforce_rej", "grpo"])
def test_liger_refused_where_grpo_trainer_bypasses_compute_loss(tmp_path, monkeypatch, algorithm):
    # TRL <= 1.13 sends use_liger_kernel=True to GRPOTrainer.compute_liger_loss, which never calls _compute_loss
    # nor reads the loss mask: RAFT's loss and every sample filter would silently not apply.
    from trl import GRPOTrainer

    monkeypatch.setattr(GRPOTrainer, "compute_liger_loss", lambda self, model, inputs: 0.0, raising=False)
    with pytest.raises(ValueError, match="use_liger_kernel=True is not supported with this TRL.*bypassing `_compute_loss`"):
        make_trainer(algorithm, build_tokenizer(), tmp_path, use_liger_kernel=True, loss_type="dapo")


def test_liger_flag_keeps_the_raft_loss_and_the_masks(tmp_path, tiny_tokenizer, monkeypatch):
    # On TRL 1.14.2-1.16 use_liger_kernel=True still computes the loss in _compute_loss (1.14.2: through TRL's
    # chunked LM head instead of full logits; 1.15+: Liger's layer kernels only). Liger is not installed here,
    # so its layer kernels (transformers' apply_liger_kernel, Triton-only) are stubbed; the TRL code path is real.
    import transformers.trainer
    from trl import GRPOTrainer

    assert not hasattr(GRPOTrainer, "compute_liger_loss")
    monkeypatch.setattr(transformers.trainer, "apply_liger_kernel", lambda model, config: None)
    monkeypatch.setattr("trl.trainer.grpo_trainer.is_liger_kernel_available", lambda *a, **k: True, raising=False)
    model = build_model(tiny_tokenizer)
    liger = make_trainer("raft", tiny_tokenizer, tmp_path / "liger", model=copy.deepcopy(model), use_liger_kernel=True)
    plain = make_trainer("raft", tiny_tokenizer, tmp_path / "plain", model=copy.deepcopy(model))
    if TRL_VERSION >= Version("1.15.0"):  # TRL keeps its fused LM head: Liger's fused cross-entropy is turned off
        assert liger.args.liger_kernel_config["fused_linear_cross_entropy"] is False
    batch = generate(liger)
    assert batch["advantages"].tolist() == generate(plain)["advantages"].tolist()
    # Stale old log-probs: GRPO's ratio would be far outside the clip range (zero gradient); RAFT's _compute_loss
    # withholds them, so the gradient is still the NLL of the kept tokens, with the rejected rows masked.
    stale = dict(batch, old_per_token_logps=torch.full(batch["completion_ids"].shape, -50.0))
    grad_liger = gradient(liger, stale)
    assert any(float(g.abs().max()) > 0 for g in grad_liger.values())
    assert_same_gradients(grad_liger, gradient(plain, batch), rtol=1e-4, atol=1e-6)
    rejected = dict(batch, tool_mask=torch.zeros_like(batch["tool_mask"]))
    assert all(float(g.abs().max()) == 0.0 for g in gradient(liger, rejected).values())


# ---------------------------------------------------------------------------------------------- TRL 1.15 on CPU


@pytest.mark.skipif(LOGPROBS_ON_CPU, reason="only TRL 1.15.x lacks a torch log-prob path")
def test_trl_1_15_on_cpu_is_refused_at_construction_and_stock_grpo_fails_too(tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    tiny_tokenizer = build_tokenizer()
    with pytest.raises(ValueError, match=r"computes log-probabilities only with its Triton fused LM head"):
        make_trainer("raft", tiny_tokenizer, tmp_path / "raft")
    # what the refusal saves the user from: stock GRPOTrainer builds, then fails inside TRL at its first step
    args = tiny_config(GRPOConfig, tmp_path / "grpo", loss_type="dapo")
    stock = GRPOTrainer(build_model(tiny_tokenizer), make_fixed_reward(), args=args, processing_class=tiny_tokenizer,
                        train_dataset=Dataset.from_dict({"prompt": list(PROMPT_CORRECT)}))
    if importlib.util.find_spec("triton") is None:  # CPU-only torch: TRL's kernel import failed, the head is None
        with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'apply'"):
            stock.train()
    else:  # Triton kernels cannot launch on CPU tensors
        with pytest.raises(Exception):
            stock.train()


# ---------------------------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("hard_drop", [False, True])
def test_step_where_every_group_is_rejected(tmp_path, tiny_tokenizer, hard_drop):
    table = {p: [0.0] * NUM_GENERATIONS for p in ("x", "y")}  # all wrong: RAFT keeps nothing
    model = build_model(tiny_tokenizer)
    before = copy.deepcopy(model.state_dict())
    trainer = make_trainer(
        "raft", tiny_tokenizer, tmp_path, model=model, table=table, hard_drop=hard_drop,
        optim="sgd", learning_rate=1.0, max_grad_norm=0.0, weight_decay=0.0,
    )
    trainer.train()
    logs = trainer.state.log_history[0]
    assert logs["loss"] == 0.0 and logs["sample_filter/samples_kept"] == 0.0 and logs["sample_filter/groups_all_wrong"] == 1.0
    if hard_drop:
        assert logs["sample_filter/rows_per_rank"] == 1.0 and logs["sample_filter/filler_rows"] == 1.0
    for name, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)  # zero gradient, no change


def test_completions_table_has_weights_and_kept_column(tmp_path, tiny_tokenizer):
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, log_completions=True)
    trainer.train()
    table = pd.read_parquet(tmp_path / "completions" / "completions_00001.parquet")
    # TRL 1.16 logs the prompt as given, 1.14.2 the decoded prompt tokens (here "Q 3 :   3 + 0 ="): match by the
    # prompt without whitespace, one table prompt for each logged one.
    by_chars = {"".join(prompt.split()): prompt for prompt in PROMPT_CORRECT}
    assert len(by_chars) == len(PROMPT_CORRECT)
    prompts = [by_chars["".join(logged.split())] for logged in table["prompt"]]
    assert sorted(prompts) == sorted(p for p in PROMPT_CORRECT for _ in range(NUM_GENERATIONS))
    expected_kept = [0 < sum(PROMPT_CORRECT[p]) < NUM_GENERATIONS for p in prompts]
    assert table["kept"].tolist() == expected_kept and 0 < sum(expected_kept) < len(expected_kept)
    for prompt, kept, advantage, reward in zip(prompts, table["kept"], table["advantage"], table["fixed_reward"]):
        assert advantage == (0.0 if not kept else (1.0 if reward > 0 else -1.0)), prompt


@pytest.mark.parametrize("hard_drop", [False, True])
def test_evaluation_uses_the_same_selection(tmp_path, tiny_tokenizer, hard_drop):
    trainer = make_trainer("reinforce_rej", tiny_tokenizer, tmp_path, hard_drop=hard_drop,
                           per_device_eval_batch_size=NUM_GENERATIONS * len(PROMPT_CORRECT))
    metrics = trainer.evaluate(Dataset.from_dict({"prompt": list(PROMPT_CORRECT)}))
    assert metrics["eval_sample_filter/groups_mixed"] == pytest.approx(0.6)
    assert metrics["eval_sample_filter/samples_kept"] == 12.0
    assert math.isfinite(metrics["eval_loss"])
