"""A TRL run with ``use_vllm=True, vllm_mode="colocate"`` that records what vLLM generates from.

    python -m minimal_rl_e2e.trl_vllm ALGORITHM MODEL_DIR OUT_DIR [--steps 3] [--learning-rate 1e-3]

ALGORITHM: ``raft_pp`` (RaftTrainer with importance sampling) or a ReinforceRejTrainer algorithm
(``reinforce_rej``, or ``reinforce_ada_balance``: Reinforce-Ada's rounds, several vLLM generations per step).
One process per run: the colocated vLLM engine lives in this process (TRL reaches
into ``llm.llm_engine.model_executor.driver_worker``) together with torch.distributed state, so runs do
not share a process.

At every training step k a callback records, for one fixed prompt + completion:
- ``hf_before[k]``: the per-token log-probs under the policy as it is when step k starts (the weights TRL
  must push to vLLM before generating step k's samples);
- ``vllm_at[k]``: the same log-probs from the colocated vLLM engine after step k generated (its
  ``prompt_logprobs``), i.e. from the weights it really generated step k from.
TRL syncs (recorded in ``syncs``) before each generation whose global step differs from the last synced one,
so vLLM generates step 1 from the initial weights and step k from the weights after step k-1: ``vllm_at[k]`` must match
``hf_before[k]`` at every step and move away from the initial values as training goes. The result
(with TRL's per-step logs) is written to ``OUT_DIR/result.json``.

For an adaptive algorithm it also records every row of each step's training batch (``rows[k]``): its prompt
and completion, the dataset answer and the reward math_verify_reward gives the completion, its advantage and
whether it is in the loss, and the completion's per-token log-probs as vLLM sampled them (the importance-sampling
correction's input) and as the policy computes them (transformers, the weights vLLM generated from).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PROMPTS_PER_STEP = 4
NUM_GENERATIONS = 4
MAX_COMPLETION_TOKENS = 16
FIXED_PROBLEM, FIXED_ANSWER = "37+58=", "95"


def _fixed_sequence(tokenizer) -> tuple[list[int], int]:
    """Token ids of the demo prompt for FIXED_PROBLEM followed by its correct completion + EOS, and the
    number of prompt tokens."""
    from minimal_rl_app.demo.evaluate import demo_prompt
    from minimal_rl_app.demo.task import completion_text

    prompt = tokenizer(demo_prompt(tokenizer, FIXED_PROBLEM), add_special_tokens=False)["input_ids"]
    completion = tokenizer(completion_text(FIXED_ANSWER), add_special_tokens=False)["input_ids"]
    return prompt + completion + [tokenizer.eos_token_id], len(prompt)


def hf_logprobs(model, ids: list[int], n_prompt: int) -> list[float]:
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].float()
    if was_training:
        model.train()
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:], device=logits.device)[:, None])[:, 0]
    return logp[n_prompt - 1 :].tolist()


def vllm_logprobs(llm, ids: list[int], n_prompt: int) -> list[float]:
    """Log-prob of every completion token of ``ids`` under the engine's current weights."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
    out = llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)[0]
    return [out.prompt_logprobs[i][ids[i]].logprob for i in range(n_prompt, len(ids))]


def capture_rows(trainer, rows_by_step: dict) -> None:
    """Wrap the trainer's `_generate_and_score_completions` to record each training batch's rows (see above)."""
    from minimal_rl.reward import math_verify_reward
    from trl_ext.hard_drop import LOSS_MASK_KEY

    original = trainer._generate_and_score_completions
    tokenizer = trainer.processing_class

    def wrapped(inputs):
        output = original(inputs)
        if not trainer.model.training:
            return output
        rows = []
        for i, row in enumerate(inputs):
            prompt = output["prompt_ids"][i][output["prompt_mask"][i].bool()].tolist()
            completion = output["completion_ids"][i][output["completion_mask"][i].bool()].tolist()
            sampled = output.get("sampling_per_token_logps")
            rows.append({
                "problem": row["prompt"][-1]["content"],
                "prompt": tokenizer.decode(prompt),
                "completion": tokenizer.decode(completion, skip_special_tokens=True),
                "answer": row["answer"],
                "advantage": float(output["advantages"][i]),
                "in_loss": bool(output[LOSS_MASK_KEY][i].any()),
                "vllm_logprobs": None if sampled is None else sampled[i][: len(completion)].tolist(),
                "hf_logprobs": hf_logprobs(trainer.model, prompt + completion, len(prompt)),
            })
        rewards = math_verify_reward([r["completion"] for r in rows], answer=[r["answer"] for r in rows])
        for r, reward in zip(rows, rewards):
            r["reward"] = reward
        rows_by_step[trainer.state.global_step + 1] = rows
        return output

    trainer._generate_and_score_completions = wrapped


def build_trainer(algorithm: str, model_dir: Path, out_dir: Path, steps: int, learning_rate: float, callbacks):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from minimal_rl_app.demo.evaluate import demo_messages
    from minimal_rl_app.demo.task import TaskConfig, make_splits
    from minimal_rl.reward import math_verify_reward
    from trl_ext import build_trainer as build_trl_trainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype="float32")
    problems = make_splits(TaskConfig()).train[: PROMPTS_PER_STEP * steps]
    dataset = Dataset.from_list([{"prompt": demo_messages(p.problem), "answer": p.answer} for p in problems])
    common = dict(
        output_dir=str(out_dir / "trainer"),
        use_vllm=True,
        vllm_mode="colocate",
        vllm_max_model_length=64,
        vllm_gpu_memory_utilization=0.1,
        use_cpu=True,
        bf16=False,
        max_steps=steps,
        per_device_train_batch_size=PROMPTS_PER_STEP * NUM_GENERATIONS,
        gradient_accumulation_steps=1,
        num_generations=NUM_GENERATIONS,
        max_completion_length=MAX_COMPLETION_TOKENS,
        temperature=1.0,
        # large on purpose: one update must move the fixed completion's log-probs far more than the
        # numeric difference between vLLM and transformers, so a missed sync cannot pass
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
        shuffle_dataset=False,
    )
    return build_trl_trainer(
        algorithm, model, [math_verify_reward], config=common, train_dataset=dataset,
        processing_class=tokenizer, callbacks=list(callbacks),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algorithm")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--no-vllm-workaround", action="store_true",
        help="leave vLLM's CPU weight packing on (vllm_cpu.py) to see what it breaks",
    )
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    if not args.no_vllm_workaround:
        from minimal_rl_e2e.vllm_cpu import keep_weights_reloadable

        keep_weights_reloadable()
    from transformers import TrainerCallback

    record: dict = {"hf_before": {}, "vllm_at": {}, "logs": [], "step_wall_s": {}}
    holder: dict = {}

    class Probe(TrainerCallback):
        def on_step_begin(self, args_, state, control, model=None, **kwargs):
            step = state.global_step + 1
            record["hf_before"][step] = hf_logprobs(holder["trainer"].model, *holder["fixed"])
            holder["t"] = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            step = state.global_step
            record["step_wall_s"][step] = time.perf_counter() - holder["t"]
            record["vllm_at"][step] = vllm_logprobs(holder["trainer"].vllm_generation.llm, *holder["fixed"])

        def on_log(self, args_, state, control, logs=None, **kwargs):
            record["logs"].append({"step": state.global_step, **(logs or {})})

    trainer = build_trainer(args.algorithm, args.model_dir, args.out_dir, args.steps, args.learning_rate, [Probe()])
    holder["trainer"] = trainer
    from minimal_rl.table import get_algorithm

    if get_algorithm(args.algorithm).adaptive:
        record["rows"] = {}
        capture_rows(trainer, record["rows"])
    record["syncs"] = []  # the global step at every weight push to vLLM
    sync = trainer.vllm_generation.sync_weights

    def counted_sync():
        record["syncs"].append(trainer.state.global_step)
        sync()

    trainer.vllm_generation.sync_weights = counted_sync
    holder["fixed"] = _fixed_sequence(trainer.processing_class)
    record["setup_s"] = time.perf_counter() - start
    record["hf_initial"] = hf_logprobs(trainer.model, *holder["fixed"])
    record["vllm_initial"] = vllm_logprobs(trainer.vllm_generation.llm, *holder["fixed"])
    error = None
    try:
        trainer.train()
    except Exception as exc:  # noqa: BLE001 - reported in the result, re-raised below
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.update(
            algorithm=args.algorithm,
            trainer_class=type(trainer).__name__,
            steps=args.steps,
            learning_rate=args.learning_rate,
            vllm_workaround=not args.no_vllm_workaround,
            error=error,
            wall_s=time.perf_counter() - start,
            env={k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND")},
        )
        (args.out_dir / "result.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
