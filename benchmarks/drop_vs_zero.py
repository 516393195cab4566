"""Actor-update cost of dropping rejected samples vs zero-weighting them, through verl's worker-side loss.

One actor update = for each PPO mini-batch: forward + backward of every row through a small random
Qwen2 model on CPU, verl's `ppo_loss` (vanilla PPO clip, token-mean over the mini-batch's
`batch_num_tokens`, as verl's engines set it), then an AdamW step. Rows are run unpadded, one sequence per
forward (what verl's remove-padding path costs: tokens, not rows x max length).

- zero: all B rows, rejected ones with advantage 0 (the paper's fork, stock verl).
- drop: only the kept rows, then minimal-rl's padding rows (`verl_ext.sampler.padding_row_template`: 2 tokens,
  zero loss mask) up to the multiple verl requires (PPO mini-batch rows), as the sampler does.
- drop, verl padding: the same with verl's own padding rows (`construct_minimal_padding_template`: 128 tokens),
  what verl would add if the sampler did not pad (for reference).

A fraction f of the rows is rejected (RAFT-style, per response). Target: drop time <= (1 - f) + 0.05 of
zero time. Timings on a shared machine are noisy: both modes run interleaved in one process, each
timed by this process's CPU time (single-threaded torch, so other processes on the machine barely
affect it) and wall time. The table reports the fastest of the repeats per mode (the run least disturbed
by the neighbours; the usual estimator for noisy timings), the CPU-time ratio of those, and the ratio of
the median wall times for reference.

    .venv/bin/python benchmarks/drop_vs_zero.py [--prompts 8] [--n 4] [--mini-batch-prompts 4] ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def build_model(args):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "sdpa"
    return Qwen2ForCausalLM(config)


def make_rows(args, generator):
    """Real rows: prompt + response token ids of fixed lengths, plus old log-probs."""
    import torch

    rows = []
    for _ in range(args.prompts * args.n):
        prompt = torch.randint(3, args.vocab, (args.prompt_len,), generator=generator)
        response = torch.randint(3, args.vocab, (args.response_len,), generator=generator)
        rows.append(
            {
                "prompts": prompt,
                "responses": response,
                "response_mask": torch.ones(args.response_len, dtype=torch.int64),
                "old_log_probs": -torch.rand(args.response_len, generator=generator) - 4.0,
            }
        )
    return rows


def padding_rows(template_row, count, cheap=True, eos_token_id=2):
    """Padding rows (loss mask 0): minimal-rl's 2-token rows, or verl's own 128-token ones (``cheap=False``)."""
    import torch
    from verl.trainer.ppo.padding_utils import construct_minimal_padding_template

    from verl_ext.sampler import padding_row_template

    if cheap:
        sample, tag = padding_row_template(template_row, {"seq_len": 0})
    else:
        sample, tag = construct_minimal_padding_template(template_row, {"seq_len": 0}, eos_token_id)
    assert tag["is_padding"] and int(sample["response_mask"].sum()) == 0
    pad = {
        "prompts": sample["prompts"],
        "responses": sample["responses"],
        "response_mask": sample["response_mask"],
        "old_log_probs": torch.zeros(sample["responses"].numel()),
        "advantage": 0.0,
    }
    return [dict(pad) for _ in range(count)]


def actor_update(model, optimizer, rows, actor_config, mini_batch_rows, micro_batch_rows):
    """One verl-style actor update over ``rows`` (each a dict with an ``advantage``)."""
    import torch
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.utils.torch_functional import logprobs_from_logits
    from verl.workers.utils.losses import ppo_loss

    def nested(values):
        return torch.nested.as_nested_tensor(values, layout=torch.jagged)

    for start in range(0, len(rows), mini_batch_rows):
        mini = rows[start : start + mini_batch_rows]
        batch_num_tokens = int(sum(int(r["response_mask"].sum()) for r in mini))
        optimizer.zero_grad(set_to_none=True)
        for m_start in range(0, len(mini), micro_batch_rows):
            micro = mini[m_start : m_start + micro_batch_rows]
            flat_log_probs = []
            for row in micro:  # unpadded: one sequence per forward, as remove-padding costs
                input_ids = torch.cat([row["prompts"], row["responses"]])
                logits = model(input_ids=input_ids[None]).logits[0]
                flat_log_probs.append(logprobs_from_logits(logits, torch.roll(input_ids, -1)))
            data = TensorDict(
                {
                    "prompts": nested([r["prompts"] for r in micro]),
                    "responses": nested([r["responses"] for r in micro]),
                    "response_mask": nested([r["response_mask"] for r in micro]),
                    "old_log_probs": nested([r["old_log_probs"] for r in micro]),
                    "advantages": nested([r["advantage"] * r["response_mask"].float() for r in micro]),
                },
                batch_size=len(micro),
            )
            tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=batch_num_tokens, global_batch_size=len(mini))
            loss, _ = ppo_loss(actor_config, {"log_probs": torch.cat(flat_log_probs)}, data)
            loss.backward()
        optimizer.step()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--n", type=int, default=4, help="responses per prompt")
    parser.add_argument("--mini-batch-prompts", type=int, default=4, help="PPO mini-batch (prompts): 2 steps/batch")
    parser.add_argument("--micro-batch-rows", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--response-len", type=int, default=960)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    args = parser.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    import torch
    from verl.workers.config import FSDPActorConfig

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = build_model(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    actor_config = FSDPActorConfig(
        strategy="fsdp",
        ppo_mini_batch_size=args.mini_batch_prompts,
        ppo_micro_batch_size_per_gpu=args.micro_batch_rows,
        rollout_n=args.n,
        loss_agg_mode="token-mean",
    )
    generator = torch.Generator().manual_seed(0)
    rows = make_rows(args, generator)
    num_rows = len(rows)
    mini_batch_rows = args.mini_batch_prompts * args.n  # verl's required multiple (dp = 1)

    actor_update(model, optimizer, [dict(r, advantage=1.0) for r in rows[:2]], actor_config, 2, 2)  # warm-up

    print(
        f"# {num_rows} rows of {args.prompt_len}+{args.response_len} tokens, mini-batch {mini_batch_rows} rows, "
        f"micro-batch {args.micro_batch_rows}, Qwen2 hidden {args.hidden} x {args.layers} layers, "
        f"{args.repeats} repeats, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    header = (
        "| f rejected | rows zero | rows drop (kept + padding) | zero CPU s (min) | drop CPU s (min) "
        "| drop/zero CPU | drop/zero wall (median) | with verl's 128-token padding: drop/zero CPU | target <= | ok |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|---|---|")
    all_ok = True
    for f in args.fractions:
        num_rejected = round(f * num_rows)
        rejected = set(torch.randperm(num_rows, generator=generator)[:num_rejected].tolist())
        zero_rows = [dict(r, advantage=0.0 if i in rejected else 1.0) for i, r in enumerate(rows)]
        kept_rows = [dict(r, advantage=1.0) for i, r in enumerate(rows) if i not in rejected]
        pad_count = (-len(kept_rows)) % mini_batch_rows
        drop_rows = kept_rows + padding_rows(rows[0], pad_count)
        verl_padded = kept_rows + padding_rows(rows[0], pad_count, cheap=False)
        cpu = {"zero": [], "drop": [], "verl": []}
        wall = {"zero": [], "drop": [], "verl": []}
        for _ in range(args.repeats):
            for mode, batch in (("zero", zero_rows), ("drop", drop_rows), ("verl", verl_padded)):
                start_cpu, start_wall = time.process_time(), time.perf_counter()
                actor_update(model, optimizer, batch, actor_config, mini_batch_rows, args.micro_batch_rows)
                cpu[mode].append(time.process_time() - start_cpu)
                wall[mode].append(time.perf_counter() - start_wall)
        zero_s, drop_s = min(cpu["zero"]), min(cpu["drop"])
        wall_ratio = statistics.median(wall["drop"]) / statistics.median(wall["zero"])
        ratio = drop_s / zero_s
        target = (1 - f) + 0.05
        ok = ratio <= target
        all_ok &= ok
        print(
            f"| {f:.2f} | {num_rows} | {len(drop_rows)} ({len(kept_rows)} + {pad_count}) | {zero_s:.2f} | "
            f"{drop_s:.2f} | {ratio:.3f} | {wall_ratio:.3f} | {min(cpu['verl']) / zero_s:.3f} | {target:.2f} | "
            f"{'yes' if ok else 'NO'} |"
        )
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
