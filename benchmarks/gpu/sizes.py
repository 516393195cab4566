"""The model sizes of the GPU benchmark (Qwen2 architecture), importable without torch."""

from __future__ import annotations

# Qwen2.5-0.5B / -1.5B (their config.json), written out so that nothing is downloaded.
QWEN2_SIZES = {
    "0.5B": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "1.5B": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    # CPU: the same architecture, small enough for 2 cores (a harness check) and tiny (the smoke run)
    "small": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=True),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=256, tie_word_embeddings=True),
}
QWEN2_COMMON = dict(max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6, hidden_act="silu",
                    attention_dropout=0.0, use_sliding_window=False)


def approx_parameters(size: str) -> int:
    """Parameters of a size from its config (embeddings tied), without building it."""
    c = QWEN2_SIZES[size]
    h, kv = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"] * c["num_key_value_heads"]
    return c["vocab_size"] * h + c["num_hidden_layers"] * (2 * h * h + 2 * h * kv + 3 * h * c["intermediate_size"])
