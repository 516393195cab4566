"""What the tests share: the spec's worked example with its hand-computed weights, a tiny offline model and
tokenizer, and TRL test helpers.

Importable as ``import mrl_testing`` from every test (``pythonpath = ["tests/support"]`` in pyproject.toml; no
tests/__init__.py, because verl ships a top-level ``tests`` package) and from the 2-process worker script.
"""

from __future__ import annotations

import importlib.util
import math
import string
import sys
from pathlib import Path

import torch

# --------------------------------------------------------------------------------------------
# The spec's worked example (ALGORITHMS.md): n = 4 responses, one group for each k = 0..4 correct
# --------------------------------------------------------------------------------------------

NUM_GENERATIONS = 4
K_CORRECT = (0, 1, 2, 3, 4)
S3 = math.sqrt(3.0) / 2.0  # r / std for k = 2: the unbiased std of (+1, +1, -1, -1) is 2 / sqrt(3)
X = None  # dropped from the update

# Hand-computed weights of each group (correct responses first), from the spec's table.
HAND_WEIGHTS: dict[str, list[list[float | None]]] = {
    "raft": [[X] * 4, [1, X, X, X], [1, 1, X, X], [1, 1, 1, X], [1, 1, 1, 1]],
    "reinforce": [[-1] * 4, [1, -1, -1, -1], [1, 1, -1, -1], [1, 1, 1, -1], [1] * 4],
    "reinforce_rej": [[X] * 4, [1, -1, -1, -1], [1, 1, -1, -1], [1, 1, 1, -1], [X] * 4],
    # r / std with the unbiased std: k=1 -> std 1; k=2 -> std 2/sqrt(3); k=3 -> std 1
    "reinforce_rej_std": [[X] * 4, [1, -1, -1, -1], [S3, S3, -S3, -S3], [1, 1, 1, -1], [X] * 4],
    "reinforce_remove_all_wrong": [[X] * 4, [1, -1, -1, -1], [1, 1, -1, -1], [1, 1, 1, -1], [1] * 4],
    "reinforce_remove_all_correct": [[-1] * 4, [1, -1, -1, -1], [1, 1, -1, -1], [1, 1, 1, -1], [X] * 4],
    "reinforce_mean_zero": [[0] * 4, [1.5, -0.5, -0.5, -0.5], [1, 1, -1, -1], [0.5, 0.5, 0.5, -1.5], [0] * 4],
    # the spec: GRPO gives +1.5/-0.5 at k=1, +-0.866 at k=2, +0.5/-1.5 at k=3
    "grpo": [[0] * 4, [1.5, -0.5, -0.5, -0.5], [S3, S3, -S3, -S3], [0.5, 0.5, 0.5, -1.5], [0] * 4],
}
# Reinforce-Ada on a fixed group (pool = group): A_i = c_i - k/4 on the 0/1 scale, uniform pools dropped.
for _name in ("reinforce_ada_balance", "reinforce_ada_pos"):
    HAND_WEIGHTS[_name] = [[X] * 4, [0.75, -0.25, -0.25, -0.25], [0.5, 0.5, -0.5, -0.5], [0.25, 0.25, 0.25, -0.75], [X] * 4]
# RAFT++ and its clip variants weigh exactly like RAFT (only the loss differs).
for _name in ("raft_pp", "raft_pp_clip_higher", "raft_pp_no_clip"):
    HAND_WEIGHTS[_name] = HAND_WEIGHTS["raft"]
# What each filter keeps of the worked example, by hand (group k, response i -> kept?).
HAND_KEEP: dict[str, list[list[bool]]] = {
    "none": [[True] * 4 for _ in K_CORRECT],
    "drop_wrong": [[i < k for i in range(4)] for k in K_CORRECT],
    "drop_all_wrong": [[k > 0] * 4 for k in K_CORRECT],
    "drop_all_correct": [[k < 4] * 4 for k in K_CORRECT],
    "drop_uniform": [[0 < k < 4] * 4 for k in K_CORRECT],
}


def worked_example_correct() -> list[bool]:
    """Correctness of the 20 responses, group by group, correct ones first."""
    return [i < k for k in K_CORRECT for i in range(NUM_GENERATIONS)]


def worked_example_scores(correct_value: float = 1.0, wrong_value: float = 0.0) -> torch.Tensor:
    return torch.tensor([correct_value if c else wrong_value for c in worked_example_correct()], dtype=torch.float32)


def worked_example_uids() -> list[str]:
    return [f"prompt-{k}" for k in K_CORRECT for _ in range(NUM_GENERATIONS)]


def hand_weights(algorithm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights with 0 where dropped, keep mask), flat over the worked example."""
    rows = [w for group in HAND_WEIGHTS[algorithm] for w in group]
    keep = torch.tensor([w is not None for w in rows])
    return torch.tensor([0.0 if w is None else float(w) for w in rows]), keep


# --------------------------------------------------------------------------------------------
# A tiny offline model
# --------------------------------------------------------------------------------------------


CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def build_tokenizer(save_dir: Path | None = None, chat_template: bool = False):
    """Character-level fast tokenizer (printable ASCII, newline and tab, + specials), built offline with
    `tokenizers`; ``chat_template``: a one-line "role: content" template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"] + ["\n", "\t"]
    vocab = {token: i for i, token in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.padding_side = "left"
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    if save_dir is not None:
        tokenizer.save_pretrained(save_dir)
    return tokenizer


def build_model(tokenizer, seed: int = 0, save_dir: Path | None = None, architecture: str = "llama", layers: int = 2):
    """A 2-layer causal LM (``llama`` or ``qwen2``), hidden 32, random weights, float32."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[
        architecture
    ]
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = model_class(config)
    if save_dir is not None:
        model.save_pretrained(save_dir)
        tokenizer.save_pretrained(save_dir)
    return model


# --------------------------------------------------------------------------------------------
# TRL helpers: a deterministic verifier over the worked example and a CPU config
# --------------------------------------------------------------------------------------------

# One prompt per k: the reward of a completion depends only on its prompt and its position in the group.
PROMPT_CORRECT = {f"Q{k}: {k}+0=": [1.0] * k + [0.0] * (NUM_GENERATIONS - k) for k in K_CORRECT}


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
        num_generations=NUM_GENERATIONS,
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


TRL_RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "trl"


def load_trl_train_script():
    """recipes/trl/train.py as a module (it is a script, not part of the package), loaded once."""
    name = "minimal_rl_recipes_trl_train"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TRL_RECIPES / "train.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


# --------------------------------------------------------------------------------------------
# Reinforce-Ada's rounds: known pools (trl_ext adaptive sampling, one or two processes)
# --------------------------------------------------------------------------------------------

ADA_ROUND_REPEAT, ADA_MAX_ROUNDS = 4, 3
# Scores of each prompt's pool in generation order, ADA_ROUND_REPEAT per round (1 correct, 0 wrong).
ADA_POOLS = {
    "A: 1+1=": [1, 0, 1, 0] + [1, 1, 1, 1] * 2,  # balanced: exits in round 1
    "B: 2+2=": [1, 1, 1, 1] + [1, 0, 0, 1] + [0, 0, 0, 0],  # balanced: exits in round 2 (Ada-pos: round 1, uniform)
    "C: 3+3=": [0, 0, 0, 0] * 3,  # never: a uniform pool, dropped
    "D: 4+4=": [0, 0, 0, 1] + [0, 0, 0, 0] * 2,  # balanced: never exits, keeps 1 correct + 3 wrong after round 3
}


def make_pool_reward(pools=ADA_POOLS, repeat=ADA_ROUND_REPEAT):
    """A verifier that gives each prompt's responses the next scores of its pool, and logs each response's position
    in its pool (`log_extra` column ``pool_position``). Called once per round on every process: a round's rows are
    each active prompt ``repeat`` times in a row, dealt out over the ranks in order, and an active prompt was
    active in every earlier round, so position = (round - 1) * repeat + (global row % repeat)."""
    calls = []

    def pool_reward(prompts, completions, log_extra=None, **kwargs):
        from accelerate import PartialState

        calls.append(len(prompts))
        start = PartialState().process_index * len(prompts)
        positions = [(len(calls) - 1) * repeat + (start + i) % repeat for i in range(len(prompts))]
        if log_extra is not None:
            log_extra("pool_position", positions)
        return [float(pools[prompt][position]) for prompt, position in zip(prompts, positions)]

    pool_reward.calls = calls
    return pool_reward


def ada_core_expectation(algorithm, pools=ADA_POOLS, repeat=ADA_ROUND_REPEAT):
    """`minimal_rl.adaptive.run_rounds` on the same pools: (the rounds, [(kept positions, advantages or None for a
    uniform pool) per prompt])."""
    from minimal_rl.adaptive import pool_baseline, run_rounds
    from minimal_rl.table import get_algorithm

    drawn = {prompt: 0 for prompt in pools}
    names = list(pools)

    def sample_round(active, repeat):
        out = []
        for i in active:
            start = drawn[names[i]]
            drawn[names[i]] += repeat
            out.append([bool(s) for s in pools[names[i]][start:start + repeat]])
        return out

    rounds = run_rounds(sample_round, len(names), NUM_GENERATIONS, get_algorithm(algorithm).exit_rule,
                        ADA_MAX_ROUNDS, repeat)
    expected = []
    for name, pool in zip(names, rounds.pools):
        generated = torch.tensor([float(s) for s in pools[name][:len(pool.correct)]])
        advantages = None if pool.uniform else pool_baseline(generated[pool.kept], generated).tolist()
        expected.append((pool.kept, advantages))
    return rounds, expected


def tiny_run_args(steps: int = 2, eval_every: int = 1) -> list[str]:
    """`minimal-rl train/compare` flags of a seconds-long run: tiny random model, no warm-start, 2 prompts x 2 samples."""
    return [
        "--tiny-model", "--warmstart-max-steps", "0", "--steps", str(steps), "--prompts-per-step", "2",
        "--num-generations", "2", "--eval-problems", "4", "--eval-samples", "1", "--eval-every", str(eval_every),
        "--no-progress",
    ]
