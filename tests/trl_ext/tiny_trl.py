"""Tiny offline model, tokenizer and deterministic reward for the TRL trainer tests.

Plain functions, loaded by path (`load_helpers` in conftest.py) by the tests, the fixtures and the
2-process worker, which runs outside pytest.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

NUM_GENERATIONS = 4

# The spec's worked example: one prompt per k = number of correct responses out of 4.
PROMPT_CORRECT = {f"Q{k}: {k}+0=": [1.0] * k + [0.0] * (NUM_GENERATIONS - k) for k in range(NUM_GENERATIONS + 1)}


def build_tokenizer(save_dir: Path | None = None):
    """Character-level fast tokenizer (printable ASCII + specials), built offline with `tokenizers`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    vocab = {token: i for i, token in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.padding_side = "left"
    if save_dir is not None:
        tokenizer.save_pretrained(save_dir)
    return tokenizer


def build_model(tokenizer, seed: int = 0, save_dir: Path | None = None):
    """2-layer Llama, hidden 32, random weights (float32)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    if save_dir is not None:
        model.save_pretrained(save_dir)
    return model


def member_index(completions, process_index: int) -> list[int]:
    """Position of each completion inside its prompt's group, from its global row (TRL lays groups out
    contiguously in the batch gathered over processes, and every process holds the same number of rows)."""
    start = process_index * len(completions)
    return [(start + i) % NUM_GENERATIONS for i in range(len(completions))]


def make_fixed_reward(table: dict[str, list[float]] = PROMPT_CORRECT):
    """Deterministic verifier: a completion's score depends only on its prompt and its group position."""

    def fixed_reward(prompts, completions, **kwargs):
        from accelerate import PartialState

        positions = member_index(completions, PartialState().process_index)
        return [table[prompt][position] for prompt, position in zip(prompts, positions)]

    return fixed_reward


def tiny_config(config_class, output_dir, **overrides):
    """A config for 2-core CPU runs: fp32, no checkpointing, short completions, one generation per step."""
    values = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=4 * len(PROMPT_CORRECT),
        gradient_accumulation_steps=1,
        max_completion_length=6,
        max_steps=1,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=0,
        dataloader_num_workers=0,
        shuffle_dataset=False,
    )
    values.update(overrides)
    return config_class(**values)


