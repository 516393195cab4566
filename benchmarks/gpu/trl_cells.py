"""The TRL cells of the GPU benchmark: stock GRPOTrainer vs ours, and masking vs hard drop at known f.

Every cell trains a fresh trainer (TRL's own `train()` loop: accelerate, autocast, gradient accumulation, its
AdamW) for `steps` optimizer steps on one Qwen2-architecture model with random weights, and times each step
and its `_generate_and_score_completions` call. Generation is *replayed*: the completions are sampled once per
model size with `model.generate` (fixed length, timed and reported on its own) and handed to every trainer
through GRPOTrainer's public `rollout_func`, so that the cells differ only in what they measure (the scoring
hooks and the update) and a whole size fits in a minute or two. The first step of each cell is a warm-up
(optimizer state, kernels) and is not counted; the cell reports the median of the others.

The reward is synthetic and keyed by prompt, so the rejected fraction f is exact:
* Reinforce-Rej (drops all-correct / all-wrong prompts): the first f·P prompts are uniform (alternately all
  correct and all wrong), the rest mixed (half correct);
* RAFT (drops wrong samples): every prompt has round((1 - f)·N) correct samples out of N.
"""

from __future__ import annotations

import gc
import statistics
import string
import tempfile
import time
from dataclasses import dataclass, field

import torch

from sizes import QWEN2_COMMON, QWEN2_SIZES

FRACTIONS = (0.25, 0.5, 0.75)
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


@dataclass
class Shape:
    """One generation batch: prompts x completions per prompt, completion length, micro-batches per step."""

    prompts: int = 16
    n: int = 4
    completion_tokens: int = 512
    micro_batches: int = 4
    steps: int = 4  # optimizer steps per cell, the first one a warm-up

    @property
    def rows(self) -> int:
        return self.prompts * self.n


@dataclass
class CellResult:
    section: str
    cell: str
    size: str
    f: float | None = None
    status: str = "ok"  # ok | skipped: ... | error: ...
    rows: int | None = None  # rows the update processes (after a hard drop: kept + filler)
    kept_tokens: int | None = None  # completion tokens that carry gradient
    score_s: float | None = None  # median _generate_and_score_completions (generation replayed)
    update_s: float | None = None  # median step minus score
    step_s: float | None = None  # median optimizer step, as TRL's train() loop runs it
    rate: float | None = None  # kept tokens / step s (reward rows: items / s)
    peak_gib: float | None = None  # peak GPU memory allocated during the cell
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None
    wall_s: float | None = None  # the whole cell, trainer construction included
    extra: dict = field(default_factory=dict)


def build_tokenizer(vocab_size: int):
    """Character-level tokenizer (printable ASCII) padded with filler tokens to the model's vocabulary, so any
    sampled id decodes."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    base = SPECIALS + chars
    vocab = {t: i for i, t in enumerate(base + [f"<t{i}>" for i in range(max(0, vocab_size - len(base)))])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                        eos_token="<eos>", unk_token="<unk>")
    tokenizer.padding_side = "left"
    return tokenizer


def build_model(size: str, tokenizer, device: torch.device):
    """Qwen2ForCausalLM with random weights, built directly on `device` (fp32 master weights)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**QWEN2_SIZES[size], **QWEN2_COMMON, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    return model


def make_prompts(count: int) -> list[str]:
    return [f"Q{i:02d}: Compute {i} + {2 * i} and put the final answer in a box. Answer:" for i in range(count)]


def correctness_table(kind: str, f: float, prompts: list[str], n: int) -> dict[str, list[float]]:
    """Per prompt, the rewards of its n samples (1 correct / 0 wrong), such that `kind` rejects exactly f."""
    table = {}
    if kind == "reinforce_rej":
        uniform = round(f * len(prompts))
        for i, prompt in enumerate(prompts):
            table[prompt] = [float(i % 2)] * n if i < uniform else [float(j % 2 == 0) for j in range(n)]
    elif kind == "raft":
        correct = round((1 - f) * n)
        for prompt in prompts:
            table[prompt] = [1.0] * correct + [0.0] * (n - correct)
    else:
        raise ValueError(kind)
    return table


def table_reward(table: dict[str, list[float]], n: int):
    def synthetic_reward(prompts, completions, **kwargs):
        # GRPOTrainer passes each prompt's n samples consecutively, from a batch start
        return [table[p][i % n] for i, p in enumerate(prompts)]

    return synthetic_reward


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generate_completions(model, tokenizer, prompts: list[str], shape: Shape, device: torch.device):
    """Sample n completions of exactly `completion_tokens` tokens per prompt; returns (cache, seconds)."""
    model.eval()
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    torch.manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad(), autocast:
        out = model.generate(**encoded, do_sample=True, max_new_tokens=shape.completion_tokens,
                             min_new_tokens=shape.completion_tokens, num_return_sequences=shape.n,
                             pad_token_id=tokenizer.pad_token_id)
    _sync(device)
    seconds = time.perf_counter() - start
    model.train()
    completions = out[:, encoded["input_ids"].size(1):].tolist()
    cache = {p: [completions[i * shape.n + j][: shape.completion_tokens] for j in range(shape.n)]
             for i, p in enumerate(prompts)}
    return cache, seconds


def replay_rollout(cache: dict[str, list[list[int]]], tokenizer, n: int):
    """A GRPOTrainer `rollout_func` that hands out the cached completions (each prompt arrives n times in a row)."""

    def rollout(prompts, trainer):
        prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        completion_ids = [cache[p][i % n] for i, p in enumerate(prompts)]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    return rollout


class StepTimer:
    """Wall time of each optimizer step (a TrainerCallback) and of each generate-and-score call."""

    def __init__(self, device: torch.device):
        from transformers import TrainerCallback

        self.device = device
        self.steps: list[float] = []
        self.scores: list[float] = []
        self.batch: dict = {}
        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                _sync(timer.device)
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                _sync(timer.device)
                timer.steps.append(time.perf_counter() - timer._start)

        self.callback = _Callback()

    def wrap_scoring(self, trainer) -> None:
        original = trainer._generate_and_score_completions  # bound method of the trainer's class

        def timed(inputs):
            _sync(self.device)
            start = time.perf_counter()
            output = original(inputs)
            _sync(self.device)
            self.scores.append(time.perf_counter() - start)
            loss_mask = output["completion_mask"]
            if output.get("tool_mask") is not None:
                loss_mask = loss_mask * output["tool_mask"]
            self.batch = {"rows": int(output["completion_ids"].size(0)), "kept_tokens": int(loss_mask.sum())}
            return output

        trainer._generate_and_score_completions = timed  # the instance attribute shadows the method


def trainer_spec(kind: str):
    """(trainer class, config class, extra config) of one cell kind."""
    from trl import GRPOConfig, GRPOTrainer

    from trl_ext import FilteredGRPOConfig, FilteredGRPOTrainer, RaftConfig, RaftTrainer, ReinforceRejConfig, ReinforceRejTrainer

    return {
        "stock": (GRPOTrainer, GRPOConfig, {}),
        "ours_none": (FilteredGRPOTrainer, FilteredGRPOConfig, {"sample_filter": "none"}),
        "raft": (RaftTrainer, RaftConfig, {}),
        "reinforce_rej": (ReinforceRejTrainer, ReinforceRejConfig, {}),
    }[kind]


def run_cell(model, tokenizer, prompts, cache, shape: Shape, device: torch.device, kind: str, table,
             hard_drop: bool = False) -> dict:
    """Train one fresh trainer for shape.steps steps; returns the medians and the peak memory."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    trainer_cls, config_cls, extra = trainer_spec(kind)
    if hard_drop:
        extra = {**extra, "hard_drop": True}
    on_gpu = device.type == "cuda"
    config = config_cls(
        output_dir=tempfile.mkdtemp(prefix="mrl_gpu_bench_"), report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, use_cpu=not on_gpu, bf16=on_gpu, seed=0, learning_rate=1e-6,
        max_steps=shape.steps, per_device_train_batch_size=shape.rows // shape.micro_batches,
        gradient_accumulation_steps=shape.micro_batches, num_generations=shape.n,
        max_completion_length=shape.completion_tokens, loss_type="dapo", beta=0.0,
        gradient_checkpointing=False, dataloader_num_workers=0, **extra,
    )
    timer = StepTimer(device)
    trainer = trainer_cls(
        model=model, reward_funcs=table_reward(table, shape.n), args=config,
        train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer,
        rollout_func=replay_rollout(cache, tokenizer, shape.n), callbacks=[timer.callback],
    )
    timer.wrap_scoring(trainer)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict (disable_tqdm=True adds it)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    try:
        trainer.train()
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if on_gpu else None
    finally:
        del trainer
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
    timed_steps = timer.steps[1:] or timer.steps
    timed_scores = timer.scores[1:] or timer.scores
    step = statistics.median(timed_steps)
    score = statistics.median(timed_scores)
    return {"step_s": step, "score_s": score, "update_s": step - score, "peak_gib": peak,
            "steps_timed": len(timed_steps), **timer.batch}
