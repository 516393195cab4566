"""The embedded default model: a character-level tokenizer and a tiny Llama, built offline.

No hub access: the tokenizer is a `tokenizers` BPE model with an *empty* merge list over printable
ASCII (so every character is one token), wrapped in `PreTrainedTokenizerFast` with a one-line chat
template; the model is a 2-layer Llama from `transformers` with random weights (0.54M parameters),
which the warm-start (`minimal_rl_app.demo.warmstart`) then trains. Both save and reload with
``AutoTokenizer`` / ``AutoModelForCausalLM`` from a local folder, like any hub model.

transformers and tokenizers are imported inside the functions: ``import minimal_rl`` stays torch-only.
"""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass
from typing import Any

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, *ROLE_TOKENS)
# Printable ASCII (space..~) plus newline and tab: every character of the task and of LaTeX answers.
CHARACTERS = tuple(sorted(set(string.printable) - set("\r\x0b\x0c")))

# One line of Jinja: system / user / assistant turns, each introduced by its role token; an assistant
# turn ends with EOS (what generation stops on).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% else %}<|assistant|>{{ m['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class ModelConfig:
    """Size of the tiny Llama. Changing any field changes the warm-start cache key."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 4096  # RoPE: only a bound; the demo uses ~25 positions
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def build_tokenizer() -> Any:
    """Character-level `PreTrainedTokenizerFast` with a chat template; no file or network needed."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in CHARACTERS:
        vocab[ch] = len(vocab)
    # BPE with no merges = one token per character; no pre-tokenizer, so spaces are ordinary characters.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=True))
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        padding_side="left",  # generation pads prompts on the left
        model_max_length=4096,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(tokenizer: Any, config: ModelConfig | None = None) -> Any:
    """A randomly initialised tiny Llama (tied embeddings) matching ``tokenizer``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = config or ModelConfig()
    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(llama_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model
