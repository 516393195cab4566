"""Optimizer-step time of ReinforceRejTrainer with rejected rows masked vs hard-dropped (CPU, one process).

For each rejected fraction f, one generation batch (16 prompts x 4 completions of fixed length, from a
random 4-layer Llama) is scored so that a fraction f of the prompts is all-correct or all-wrong. The
same batch is then trained on (loss, backward, AdamW step) with masking and with hard drop; the table
gives the median step time of a few repeats and the ratio hard / mask, against the target
(1 - f) + 0.05. The drop itself (gather and re-split of the batch) is timed separately.

    python benchmarks/trl_drop.py [--repeats 5] [--completion-length 96]

Timings on a shared machine are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import string
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

NUM_PROMPTS = 16
N = 4


def build_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(specials + chars)}, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                        unk_token="<unk>")
    tokenizer.padding_side = "left"
    return tokenizer


def build_model(tokenizer, hidden: int, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    ))


def score_table(rejected_fraction: float) -> dict[str, list[float]]:
    """First f of the prompts uniform (alternately all-correct / all-wrong), the rest mixed."""
    uniform = round(rejected_fraction * NUM_PROMPTS)
    table = {}
    for i in range(NUM_PROMPTS):
        if i < uniform:
            table[f"Q{i:02d}: {i}+{i}="] = [float(i % 2)] * N
        else:
            table[f"Q{i:02d}: {i}+{i}="] = [1.0, 0.0, 1.0, 0.0]
    return table


def make_reward(table):
    def table_reward(prompts, completions, **kwargs):
        return [table[p][i % N] for i, p in enumerate(prompts)]

    return table_reward


def one_step(trainer, batch, optimizer) -> float:
    """Seconds of loss + backward + optimizer step over the batch (one micro-batch per step)."""
    start = time.perf_counter()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def time_steps(trainer, masked, dropped, optimizer, repeats: int) -> tuple[float, float]:
    """Median step seconds (masked, dropped), the two alternating so slow spells of the machine hit both."""
    one_step(trainer, masked, optimizer)  # warm-up
    one_step(trainer, dropped, optimizer)
    pairs = [(one_step(trainer, masked, optimizer), one_step(trainer, dropped, optimizer)) for _ in range(repeats)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--completion-length", type=int, default=96)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from datasets import Dataset

    from trl_ext import ReinforceRejConfig, ReinforceRejTrainer
    from trl_ext.hard_drop import drop_rejected_rows

    tokenizer = build_tokenizer()
    rows = []
    out_dir = tempfile.mkdtemp(prefix="trl_drop_")
    print(f"model: Llama hidden={args.hidden} layers={args.layers}; batch {NUM_PROMPTS} prompts x {N} completions of "
          f"{args.completion_length} tokens; median of {args.repeats} alternating steps; torch threads=1")
    for f in (0.25, 0.5, 0.75):
        table = score_table(f)
        config = ReinforceRejConfig(
            output_dir=out_dir, use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
            per_device_train_batch_size=NUM_PROMPTS * N, max_completion_length=args.completion_length,
            generation_kwargs={"min_new_tokens": args.completion_length}, learning_rate=1e-6, seed=0,
        )
        trainer = ReinforceRejTrainer(
            build_model(tokenizer, args.hidden, args.layers), make_reward(table), args=config,
            train_dataset=Dataset.from_dict({"prompt": list(table)}), processing_class=tokenizer,
        )
        trainer.current_gradient_accumulation_steps = 1
        trainer.model.train()
        torch.manual_seed(0)
        masked = trainer._generate_and_score_completions([{"prompt": p} for p in table for _ in range(N)])
        keep = masked["tool_mask"].any(dim=1)
        start = time.perf_counter()
        dropped, plan = drop_rejected_rows(dict(masked), keep, trainer.accelerator, rows_multiple=1,
                                           pad_token_id=tokenizer.pad_token_id)
        drop_seconds = time.perf_counter() - start
        optimizer = torch.optim.AdamW(trainer.model.parameters(), lr=1e-6)
        mask_seconds, drop_step_seconds = time_steps(trainer, masked, dropped, optimizer, args.repeats)
        rows.append((f, masked["completion_ids"].size(0), dropped["completion_ids"].size(0), mask_seconds,
                     drop_step_seconds, drop_seconds))

    print()
    print("| rejected f | rows mask | rows hard-drop | mask step (s) | hard-drop step (s) | ratio | target (1-f)+0.05 | "
          "met | drop overhead (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    all_met = True
    for f, rows_mask, rows_drop, t_mask, t_drop, t_overhead in rows:
        ratio = t_drop / t_mask
        target = (1 - f) + 0.05
        met = ratio <= target
        all_met &= met
        print(f"| {f:.2f} | {rows_mask} | {rows_drop} | {t_mask:.4f} | {t_drop:.4f} | {ratio:.3f} | {target:.2f} | "
              f"{'yes' if met else 'NO'} | {t_overhead:.4f} |")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
