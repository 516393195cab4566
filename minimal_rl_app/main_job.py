"""The main job: RL on the embedded demo task (or any model + JSONL data) with the TRL trainers of trl_ext.

This is what ``minimal-rl train`` and ``minimal-rl compare`` run. There is no separate training loop: every
algorithm of `minimal_rl.table` is a trl_ext subclass of `trl.GRPOTrainer` (`trl_ext.build_trainer`: RAFT, RAFT++,
Reinforce-Rej and the Reinforce ablations, GRPO with or without a sample filter), driven by ``trainer.train()``. What this module adds is a
callback that turns TRL's per-step logs into the spec's metrics, evaluates held-out accuracy and KL to
the initial model at intervals, and keeps ``metrics.json`` valid after every step (atomic writes).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from transformers import TrainerCallback

from minimal_rl.algorithms import compute_weights
from minimal_rl.metrics import metric_key
from minimal_rl.reward import math_verify_reward
from minimal_rl.table import ALGORITHMS, SAMPLE_FILTERS, check_host_sampling, host_can_sample

# Every algorithm of the table that trl_ext can sample for trains here (trl_ext.build_trainer picks its trainer).
TRAINABLE = tuple(name for name in ALGORITHMS if host_can_sample(name, "trl_ext"))


def run_name(algorithm: str, sample_filter: str | None = None) -> str:
    """A run's name: the algorithm, or ``algorithm+filter`` when a sample filter replaces its own (the inverse of
    `minimal_rl_app.commands.common.parse_run_name`)."""
    return algorithm if sample_filter is None else f"{algorithm}+{sample_filter}"


@dataclass
class TrainSettings:
    """One RL run. Defaults are the CPU demo's (docs/main-job.md has the measurements behind them)."""

    algorithm: str = "raft_pp"
    sample_filter: str | None = None  # None: the algorithm's own (minimal_rl.table)
    steps: int = 200
    prompts_per_step: int = 32  # prompts per rollout batch (one generation round)
    num_generations: int = 8
    # Optimiser steps per rollout batch (the paper: 1024 prompts, mini-batches of 512; released scripts:
    # 4). With 1 the importance ratio is always 1, so RAFT++ would be RAFT exactly; with 2 the second
    # mini-batch is off-policy and RAFT++'s ratio and clipping act.
    mini_batches: int = 2
    learning_rate: float = 1e-4  # measured here: 1e-4 learns, 3e-4 is unstable
    warmup_steps: int = 10
    beta: float = 0.0  # KL coefficient of the loss; KL to the initial model is measured at evals regardless
    epsilon: float = 0.2
    max_completion_length: int = 16
    eval_every: int = 25
    eval_problems: int = 256
    eval_samples: int = 4  # samples per held-out problem (temperature 1.0)
    seed: int = 0
    hard_drop: bool = True  # same gradient as masking, saves the dropped rows' compute

    @property
    def name(self) -> str:
        return run_name(self.algorithm, self.sample_filter)

    def __post_init__(self) -> None:
        check_host_sampling(self.algorithm, "trl_ext")  # Reinforce-Ada's rows: say what is missing
        if self.algorithm not in TRAINABLE:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; choose one of: {', '.join(TRAINABLE)}")
        if self.sample_filter is not None and self.sample_filter not in SAMPLE_FILTERS:
            raise ValueError(f"unknown sample filter {self.sample_filter!r}; choose one of: {', '.join(SAMPLE_FILTERS)}")
        for name in ("steps", "prompts_per_step", "eval_every", "eval_problems", "eval_samples", "max_completion_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mini_batches < 1 or (self.prompts_per_step * self.num_generations) % self.mini_batches:
            raise ValueError(
                f"mini_batches={self.mini_batches} must divide the rollout batch of "
                f"{self.prompts_per_step} x {self.num_generations} samples"
            )
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2 (groups of one have no mixed kind)")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be > 0")


class RecordingReward:
    """`minimal_rl.reward.math_verify_reward` (+1 / -1) that also keeps the last batch's scores, so every
    algorithm (stock GRPO included) logs the same accuracy and group-kind fractions."""

    __name__ = "math_verify_reward"

    def __init__(self) -> None:
        self.last_scores: list[float] = []

    def __call__(self, completions: list[Any], answer: list[Any], **kwargs: Any) -> list[float]:
        scores = math_verify_reward(completions, answer)
        self.last_scores = list(scores)
        return scores


def build_trainer(
    settings: TrainSettings,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    output_dir: str | Path,
    reward: RecordingReward,
    callbacks: Sequence[TrainerCallback] = (),
    extra_config: dict | None = None,
) -> Any:
    """The TRL trainer of ``settings.algorithm`` (`trl_ext.build_trainer`), with ``settings.sample_filter``."""
    from transformers.trainer_callback import PrinterCallback

    from trl_ext import build_trainer as build_trl_trainer

    config = dict(
        output_dir=str(output_dir),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations // settings.mini_batches,
        gradient_accumulation_steps=1,
        steps_per_generation=settings.mini_batches,  # optimiser steps per rollout batch
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=settings.warmup_steps,
        weight_decay=0.0,
        beta=settings.beta,
        epsilon=settings.epsilon,
        loss_type="dapo",  # token mean over the batch for every algorithm: identical aggregation
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),  # CPU: fp32 (no fast bf16 here)
        dataloader_num_workers=0,
        log_completions=False,
    )
    if (settings.sample_filter or ALGORITHMS[settings.algorithm].sample_filter) != "none":
        config["hard_drop"] = settings.hard_drop
    config.update(extra_config or {})
    trainer = build_trl_trainer(
        settings.algorithm,
        model,
        [reward],
        config=config,
        sample_filter=settings.sample_filter,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    # Our callback prints one line per step; Trainer's printer would add a raw dict per step.
    trainer.remove_callback(PrinterCallback)
    return trainer


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write-then-rename, so an interrupted run (Ctrl-C, kill) always leaves a complete, valid file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(_sanitize(payload), f, indent=1, allow_nan=False, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _sanitize(value: Any) -> Any:
    """Recursively replace NaN / inf (not JSON) by None."""
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return _clean(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# TRL log key -> our metric name
TRL_KEYS = {
    "reward": "reward",
    "entropy": "entropy",
    "kl": "kl_train",
    "completions/mean_length": "completion_length",
    "clip_ratio/region_mean": "clip_ratio",
    **{metric_key(name): name for name in ("samples_kept_frac", "tokens_kept_frac", "weight_mean")},
    "learning_rate": "learning_rate",
    "loss": "loss",
}


ROLLOUT_KEYS = ("reward", "completion_length", "samples_kept_frac", "tokens_kept_frac", "weight_mean")


class MainJobCallback(TrainerCallback):
    """Per-step metrics, held-out evaluations, the progress bar and the always-valid metrics file."""

    def __init__(
        self,
        settings: TrainSettings,
        reward: RecordingReward,
        evaluate: Callable[[Any, int], dict[str, float]],
        metrics_path: Path,
        header: dict,
        progress: bool = True,
        log: Callable[[str], None] = print,
        log_every: int = 1,
    ) -> None:
        self.settings = settings
        self.reward = reward
        self.evaluate = evaluate
        self.metrics_path = metrics_path
        self.payload = {**header, "status": "running", "steps": [], "evals": []}
        self.progress = progress
        self.log = log
        self.log_every = max(1, log_every)
        self.bar = None
        self._t_last = None
        self._t_start = None
        self._rollout: dict[str, float] = {}

    # -- helpers
    def _write(self) -> None:
        write_json_atomic(self.metrics_path, self.payload)

    def _eval(self, model: Any, step: int) -> dict:
        t0 = time.perf_counter()
        result = {"step": step, **self.evaluate(model, step), "seconds": round(time.perf_counter() - t0, 2)}
        self.payload["evals"].append({k: _clean(v) for k, v in result.items()})
        return result

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            self.log(text)

    # -- TrainerCallback
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from tqdm.auto import tqdm

        self._t_start = self._t_last = time.perf_counter()
        ev = self._eval(model, 0)
        self._say(
            f"[{self.settings.name}] step 0: held-out accuracy {ev['heldout_accuracy']:.3f} "
            f"({self.settings.eval_problems} problems x {self.settings.eval_samples} samples)"
        )
        self._write()
        self.bar = tqdm(total=self.settings.steps, desc=self.settings.name, unit="step", disable=not self.progress)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        logs = logs or {}
        if "train_runtime" in logs or "loss" not in logs:  # the final train summary, not a step
            return
        now = time.perf_counter()
        step = int(state.global_step)
        rec: dict[str, Any] = {"step": step, "seconds": round(now - self._t_last, 3)}
        self._t_last = now
        for key, name in TRL_KEYS.items():
            if key in logs and logs[key] is not None:
                rec[name] = float(logs[key])
        # Rollout-level numbers are logged by TRL on the first mini-batch of a rollout batch only; the
        # other mini-batches of the same rollout batch share them.
        if "reward" in logs:
            self._rollout = {k: rec[k] for k in ROLLOUT_KEYS if k in rec}
        else:
            for k, v in self._rollout.items():
                rec.setdefault(k, v)
        scores = self.reward.last_scores
        if scores:
            result = compute_weights(torch.tensor(scores), "grpo", group_size=self.settings.num_generations)
            m = result.metrics()
            rec["accuracy"] = m["accuracy_before_filter"]
            rec["groups_all_correct"] = m["groups_all_correct"]
            rec["groups_all_wrong"] = m["groups_all_wrong"]
            rec["groups_mixed"] = m["groups_mixed"]
        rec.setdefault("samples_kept_frac", 1.0)
        last = step >= self.settings.steps
        if step % self.settings.eval_every == 0 or last:
            ev = self._eval(model, step)
            rec["heldout_accuracy"] = ev["heldout_accuracy"]
            for key in ("heldout_kl", "heldout_entropy"):
                if key in ev:
                    rec[key] = ev[key]
        self.payload["steps"].append({k: _clean(v) for k, v in rec.items()})
        self.payload["elapsed_s"] = round(now - self._t_start, 1)
        self._write()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(acc=f"{rec.get('accuracy', float('nan')):.2f}", ent=f"{rec.get('entropy', float('nan')):.3f}")
        if step % self.log_every == 0 or "heldout_accuracy" in rec or last:
            self._say(format_step(self.settings.name, rec))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_step(algorithm: str, rec: dict) -> str:
    """One log line per step: reward, accuracy, filtered fractions, KL, entropy (and held-out results)."""

    def f(key: str, fmt: str = ".3f") -> str:
        v = rec.get(key)
        return "  -  " if v is None else format(v, fmt)

    line = (
        f"[{algorithm}] step {rec['step']:>4}  reward {f('reward', '+.3f')}  acc {f('accuracy')}  "
        f"groups ok/wrong/mixed {f('groups_all_correct', '.2f')}/{f('groups_all_wrong', '.2f')}/{f('groups_mixed', '.2f')}  "
        f"kept {f('samples_kept_frac', '.2f')}  entropy(kept) {f('entropy')}"
    )
    if "kl_train" in rec:
        line += f"  kl {f('kl_train', '.4f')}"
    if "heldout_accuracy" in rec:
        line += f"  | held-out acc {f('heldout_accuracy')}"
        if "heldout_kl" in rec:
            line += f"  KL-to-init {f('heldout_kl', '.4f')}  entropy {f('heldout_entropy')}"
    return line + f"  ({rec['seconds']:.2f}s)"


def run_training(
    settings: TrainSettings,
    model_path: str | Path,
    train_rows: Sequence[dict],
    evaluate_factory: Callable[[Any], Callable[[Any, int], dict[str, float]]],
    output_dir: Path,
    header: dict,
    progress: bool = True,
    log: Callable[[str], None] = print,
    conversational_prompt: Callable[[str], list[dict[str, str]]] | None = None,
    save_model: bool = True,
    log_every: int = 1,
    extra_config: dict | None = None,
) -> dict:
    """Train ``settings.algorithm`` from the model at ``model_path``; returns the final metrics payload.

    ``train_rows`` are ``{"problem", "answer"}`` dicts; ``conversational_prompt`` turns a problem into chat
    messages (the demo's bare problem, or the paper's template). ``evaluate_factory(reference_model)``
    returns ``evaluate(model, step) -> dict`` (held-out accuracy and KL to the reference).
    KeyboardInterrupt is re-raised after the metrics file is marked ``interrupted``.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from minimal_rl.prompts import build_messages

    conversational_prompt = conversational_prompt or build_messages
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dtype = torch.float32 if not torch.cuda.is_available() else "auto"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    dataset = Dataset.from_list([{"prompt": conversational_prompt(r["problem"]), "answer": str(r["answer"])} for r in train_rows])
    reward = RecordingReward()
    metrics_path = output_dir / "metrics.json"
    header = {**header, "settings": asdict(settings)}
    callback = MainJobCallback(
        settings, reward, evaluate_factory(reference), metrics_path, header, progress=progress, log=log, log_every=log_every
    )
    trainer = build_trainer(
        settings, model, tokenizer, dataset, output_dir / "trl", reward, callbacks=[callback], extra_config=extra_config
    )
    t0 = time.perf_counter()
    try:
        trainer.train()
    except KeyboardInterrupt:
        callback.payload["status"] = "interrupted"
        callback.payload["train_seconds"] = round(time.perf_counter() - t0, 1)
        callback.on_train_end(None, None, None)
        callback._write()
        raise
    callback.payload["status"] = "complete"
    callback.payload["train_seconds"] = round(time.perf_counter() - t0, 1)
    callback.payload["summary"] = summarize(callback.payload)
    callback._write()
    if save_model:
        trainer.model.save_pretrained(output_dir / "model")
        tokenizer.save_pretrained(output_dir / "model")
    return callback.payload


def summarize(payload: dict) -> dict:
    """Start / end numbers of a run (what the README and the compare table quote)."""
    evals = payload.get("evals", [])
    steps = payload.get("steps", [])
    out: dict[str, Any] = {}
    if evals:
        out["heldout_accuracy_start"] = evals[0].get("heldout_accuracy")
        out["heldout_accuracy_end"] = evals[-1].get("heldout_accuracy")
        out["heldout_kl_end"] = evals[-1].get("heldout_kl")
    if steps:
        secs = [s["seconds"] for s in steps[1:]] or [steps[0]["seconds"]]
        out["seconds_per_step_median"] = sorted(secs)[len(secs) // 2]
        ent = [e.get("heldout_entropy") for e in evals if e.get("heldout_entropy") is not None]
        if ent:
            out["entropy_start"], out["entropy_end"] = ent[0], ent[-1]
    return out
