"""FilteredGRPOTrainer: stock GRPO advantages with a sample filter applied as a drop, on a tiny random Llama.

The exactness statement of docs/sample-selection.md, tested: with beta = 0 the zero-variance groups GRPO's own
advantages already give weight 0, so under loss_type="dapo" dropping them changes only the denominator, i.e. the
gradient after the drop is the stock gradient rescaled by total / kept tokens.
"""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from mrl_testing import NUM_GENERATIONS, PROMPT_CORRECT, build_model, make_fixed_reward, tiny_config
from trl import GRPOConfig, GRPOTrainer

from trl_ext import FilteredGRPOConfig, FilteredGRPOTrainer, build_trainer


def rows():
    return [{"prompt": prompt} for prompt in PROMPT_CORRECT for _ in range(NUM_GENERATIONS)]


def make(trainer_class, config_class, tokenizer, out, model, **overrides):
    config = tiny_config(config_class, out, **overrides)
    trainer = trainer_class(
        model, make_fixed_reward(), args=config, processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": list(PROMPT_CORRECT)}),
    )
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer


def generate_and_grad(trainer, seed=0):
    torch.manual_seed(seed)
    batch = trainer._generate_and_score_completions(rows())
    trainer.model.zero_grad()
    trainer.compute_loss(trainer.model, batch).backward()
    return batch, {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def test_filter_none_is_stock_grpo(tmp_path, tiny_tokenizer):
    model = build_model(tiny_tokenizer)
    stock = make(GRPOTrainer, GRPOConfig, tiny_tokenizer, tmp_path / "s", copy.deepcopy(model))
    none = make(FilteredGRPOTrainer, FilteredGRPOConfig, tiny_tokenizer, tmp_path / "n", copy.deepcopy(model), sample_filter="none")
    b1, g1 = generate_and_grad(stock)
    b2, g2 = generate_and_grad(none)
    torch.testing.assert_close(b1["advantages"], b2["advantages"])
    assert b1["num_items_in_batch"] == b2["num_items_in_batch"]
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], msg=name)
    assert none._metrics["train"]["sample_filter/samples_kept_frac"][-1] == 1.0


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_drop_uniform_changes_only_the_denominator_at_beta_zero(tmp_path, tiny_tokenizer, scale_rewards):
    model = build_model(tiny_tokenizer)
    stock = make(GRPOTrainer, GRPOConfig, tiny_tokenizer, tmp_path / "s", copy.deepcopy(model), scale_rewards=scale_rewards)
    filtered = make(FilteredGRPOTrainer, FilteredGRPOConfig, tiny_tokenizer, tmp_path / "f", copy.deepcopy(model),
                    scale_rewards=scale_rewards, sample_filter="drop_uniform")
    b_stock, g_stock = generate_and_grad(stock)
    b_filtered, g_filtered = generate_and_grad(filtered)
    torch.testing.assert_close(b_stock["advantages"], b_filtered["advantages"])  # GRPO's own advantages
    uniform = torch.tensor([sum(PROMPT_CORRECT[r["prompt"]]) in (0, NUM_GENERATIONS) for r in rows()])
    assert torch.all(b_stock["advantages"][uniform] == 0)  # zero-variance groups carry no advantage
    assert not b_filtered["tool_mask"][uniform].any() and b_filtered["tool_mask"][~uniform].all()
    total, kept = b_stock["num_items_in_batch"].item(), b_filtered["num_items_in_batch"].item()
    assert kept < total
    for name in g_stock:  # the masked (stock) gradient, rescaled by total / kept tokens
        torch.testing.assert_close(g_filtered[name], g_stock[name] * total / kept, rtol=1e-4, atol=1e-7, msg=name)


def test_with_beta_the_dropped_groups_kl_term_disappears(tmp_path, tiny_tokenizer):
    """beta > 0: stock GRPO still pulls the zero-variance groups towards the reference (their KL term); after the
    drop they contribute nothing, so the gradient is no longer a rescaling of the stock one."""
    build_model(tiny_tokenizer, save_dir=tmp_path / "model")  # TRL loads the reference model from a path
    stock = make(GRPOTrainer, GRPOConfig, tiny_tokenizer, tmp_path / "s", str(tmp_path / "model"), beta=0.5)
    filtered = make(FilteredGRPOTrainer, FilteredGRPOConfig, tiny_tokenizer, tmp_path / "f", str(tmp_path / "model"), beta=0.5)
    torch.manual_seed(1)
    shift = [0.05 * torch.randn_like(p) for p in stock.model.parameters()]
    for trainer in (stock, filtered):  # the same policy, away from the reference: the KL gradient is not zero
        with torch.no_grad():
            for p, d in zip(trainer.model.parameters(), shift):
                p.add_(d)
    b_stock, g_stock = generate_and_grad(stock)
    b_filtered, g_filtered = generate_and_grad(filtered)
    ratio = b_stock["num_items_in_batch"].item() / b_filtered["num_items_in_batch"].item()
    differs = any(not torch.allclose(g_filtered[n], g_stock[n] * ratio, rtol=1e-3, atol=1e-6) for n in g_stock)
    assert differs


def test_mask_and_hard_drop_give_the_same_gradient(tmp_path, tiny_tokenizer):
    model = build_model(tiny_tokenizer)
    masked = make(FilteredGRPOTrainer, FilteredGRPOConfig, tiny_tokenizer, tmp_path / "m", copy.deepcopy(model))
    dropped = make(FilteredGRPOTrainer, FilteredGRPOConfig, tiny_tokenizer, tmp_path / "d", copy.deepcopy(model), hard_drop=True)
    b_masked, g_masked = generate_and_grad(masked, seed=3)
    b_dropped, g_dropped = generate_and_grad(dropped, seed=3)
    assert b_dropped["completion_ids"].size(0) == int(b_masked["tool_mask"].any(dim=1).sum()) == 12
    for name in g_masked:
        torch.testing.assert_close(g_masked[name], g_dropped[name], rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "sapo", "luspo"])
def test_loss_types_where_a_mask_is_not_a_drop_are_refused(tmp_path, loss_type):
    with pytest.raises(ValueError, match=f"loss_type='{loss_type}' cannot be used with sample filter 'drop_uniform'"):
        tiny_config(FilteredGRPOConfig, tmp_path, loss_type=loss_type)
    assert tiny_config(FilteredGRPOConfig, tmp_path, loss_type=loss_type, sample_filter="none").loss_type == loss_type


def test_a_response_filter_on_group_normalised_weights_is_refused(tmp_path):
    with pytest.raises(ValueError, match="drop_wrong' drops single responses"):
        tiny_config(FilteredGRPOConfig, tmp_path, sample_filter="drop_wrong")


@pytest.mark.parametrize("loss_type", ["dapo", "cispo"])
def test_drop_exact_loss_types_are_accepted(tmp_path, loss_type):
    assert tiny_config(FilteredGRPOConfig, tmp_path, loss_type=loss_type).sample_filter == "drop_uniform"


def test_build_trainer_for_grpo_with_a_filter(tmp_path, tiny_tokenizer):
    trainer = build_trainer(
        "grpo", build_model(tiny_tokenizer), make_fixed_reward(), sample_filter="drop_all_wrong",
        config=tiny_config(dict, tmp_path), train_dataset=Dataset.from_dict({"prompt": list(PROMPT_CORRECT)}),
        processing_class=tiny_tokenizer,
    )
    assert isinstance(trainer, FilteredGRPOTrainer) and trainer.args.sample_filter == "drop_all_wrong"
    with pytest.raises(ValueError, match="needs a RaftConfig"):
        build_trainer("raft", None, None, config=tiny_config(FilteredGRPOConfig, tmp_path))
