"""What a run records and prints: the always-valid ``metrics.json``, one line per rollout, held-out
evaluations at intervals, and the bookkeeping of TRL's checkpoints (listed in the output manifest, only the
latest kept) so that ``--resume`` finds them."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import TrainerCallback

from minimal_rl.algorithms import compute_weights
from minimal_rl.metrics import metric_key

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


ADAPTIVE_KEYS = ("rounds", "generated_per_kept", "uniform_pools_frac", "exited_with_signal_frac")

# TRL log key -> our metric name
GROUP_KEYS = ("groups_all_correct", "groups_all_wrong", "groups_mixed")
TRL_KEYS = {
    "reward": "reward",
    "entropy": "entropy",
    "kl": "kl_train",
    "completions/mean_length": "completion_length",
    "clip_ratio/region_mean": "clip_ratio",
    **{metric_key(name): name for name in ("samples_kept_frac", "tokens_kept_frac", "weight_mean")},
    # group kinds as the trainer counted them: with Reinforce-Ada, the groups it trains on (n kept per prompt,
    # after the rounds); otherwise every generated group, as computed below from the scores
    **{metric_key(name): name for name in GROUP_KEYS},
    # Reinforce-Ada's rounds (absent for fixed-group algorithms)
    **{metric_key(name): name for name in ADAPTIVE_KEYS},
    "learning_rate": "learning_rate",
    "loss": "loss",
}


# Step-record keys of the generation budget: response tokens generated at this step (0 on the later mini-batches
# of a rollout batch: nothing is generated there) and since the run began.
TOKENS_GENERATED = "tokens_generated"
TOKENS_GENERATED_CUM = "tokens_generated_cum"
RESPONSES_GENERATED = "responses_generated"
RESPONSES_GENERATED_CUM = "responses_generated_cum"

ROLLOUT_KEYS = ("reward", "completion_length", "samples_kept_frac", "tokens_kept_frac", "weight_mean", *GROUP_KEYS,
                *ADAPTIVE_KEYS)


class MainJobCallback(TrainerCallback):
    """Per-step metrics, held-out evaluations, the progress bar, the always-valid metrics file, and the
    checkpoints TRL saves (listed in ``outputs``' manifest; older ones removed).

    ``resumed``: the payload of the interrupted run, already cut back to its checkpoint's step."""

    def __init__(
        self,
        settings: Any,
        reward: Any,
        evaluate: Callable[[Any, int], dict[str, float]],
        metrics_path: Path,
        header: dict,
        progress: bool = True,
        log: Callable[[str], None] = print,
        log_every: int = 1,
        outputs: Any = None,
        trl_rel: str = "trl",
        resumed: dict | None = None,
    ) -> None:
        self.settings = settings
        self.reward = reward
        self.evaluate = evaluate
        self.metrics_path = metrics_path
        self.payload = resumed or {**header, "status": "running", "steps": [], "evals": []}
        self.payload["status"] = "running"
        self.resumed_at = self.payload["steps"][-1]["step"] if resumed and self.payload["steps"] else 0
        self.progress = progress
        self.log = log
        self.log_every = max(1, log_every)
        self.outputs = outputs
        self.trl_rel = trl_rel
        self._trl_before = outputs.snapshot(trl_rel) if outputs is not None else {}
        self.bar = None
        self._t_last = None
        self._t_rollout = None
        self._t_start = None
        self._rollout: dict[str, float] = {}
        # What the recording reward had counted at the last step record; a resumed run carries on its total.
        self._counted = (0, 0)
        last = self.payload["steps"][-1] if self.payload["steps"] else {}
        self._cum_before = (int(last.get(TOKENS_GENERATED_CUM) or 0), int(last.get(RESPONSES_GENERATED_CUM) or 0))

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

        self._t_start = self._t_last = self._t_rollout = time.perf_counter()
        if self.resumed_at:
            self._say(f"[{self.settings.name}] resuming after step {self.resumed_at} (checkpoint in {args.output_dir})")
        else:
            ev = self._eval(model, 0)
            self._say(
                f"[{self.settings.name}] step 0: held-out accuracy {ev['heldout_accuracy']:.3f} "
                f"({self.settings.eval_problems} problems x {self.settings.eval_samples} samples)"
            )
        self._write()
        self.bar = tqdm(total=self.settings.steps, initial=self.resumed_at, desc=self.settings.name, unit="step",
                        disable=not self.progress)

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
            # a reward call's scores hold whole groups only with fixed groups (Reinforce-Ada's rounds give
            # round_repeat responses of the active prompts each): the trainer's own counts come first
            for name in GROUP_KEYS:
                rec.setdefault(name, m[name])
        rec.setdefault("samples_kept_frac", 1.0)
        rec.update(generation_counts(self.reward, self._counted, self._cum_before))
        self._counted = (getattr(self.reward, "tokens_generated", 0), getattr(self.reward, "responses_generated", 0))
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
        # One line per rollout batch (after its last mini-batch: the others repeat its rollout numbers),
        # every --log-every rollouts, and at every held-out evaluation.
        rollout_end = step % self.settings.mini_batches == 0
        rollout = (step - 1) // self.settings.mini_batches + 1
        if (rollout_end and rollout % self.log_every == 0) or "heldout_accuracy" in rec or last:
            self._say(format_step(self.settings.name, {**rec, "seconds": now - self._t_rollout}))
        if rollout_end:
            self._t_rollout = now

    def on_save(self, args, state, control, **kwargs):
        """List the checkpoint TRL just wrote in the manifest, then drop the earlier ones this run wrote."""
        if self.outputs is None:
            return
        self.outputs.adopt_tree(self.trl_rel, self._trl_before)
        latest = f"checkpoint-{state.global_step}"
        for old in sorted({f.split("/")[len(self.trl_rel.split("/"))] for f in self.outputs.files
                           if f.startswith(self.trl_rel + "/checkpoint-")} - {latest}):
            self.outputs.remove_listed(f"{self.trl_rel}/{old}")
        self.payload["checkpoint"] = {"step": int(state.global_step), "path": f"{self.trl_rel.split('/')[-1]}/{latest}"}
        self._write()

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def generation_counts(reward: Any, counted: tuple[int, int], before: tuple[int, int]) -> dict[str, int]:
    """The step record's generation budget from the recording reward's running counts: what was generated since
    the last record (``counted``: the counts then) and in all, ``before`` (a resumed run's totals) included."""
    tokens, responses = getattr(reward, "tokens_generated", 0), getattr(reward, "responses_generated", 0)
    return {
        TOKENS_GENERATED: tokens - counted[0],
        TOKENS_GENERATED_CUM: before[0] + tokens,
        RESPONSES_GENERATED: responses - counted[1],
        RESPONSES_GENERATED_CUM: before[1] + responses,
    }


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
