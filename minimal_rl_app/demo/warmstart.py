"""Supervised warm-start of the tiny model, cached on disk.

RL needs a policy that is sometimes right: from random weights every group would be all-wrong. A short
supervised run on ``problem -> \\boxed{answer}`` brings the tiny Llama to a sampled accuracy
(temperature 1.0) inside a target band; it stops on *measured* accuracy, not on a step count, because the
band is crossed quickly (on this machine: 19% at step 350, 56% at step 600).

The result is cached under ``<cache>/demo-<key>/`` (``key`` hashes every knob, so changing the task or
the model builds a new one). A manifest records a SHA-256 of every file; a cache whose files do not match,
or that fails to load and run, is deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from minimal_rl_app.demo.evaluate import demo_messages, demo_prompt
from minimal_rl_app.heldout import evaluate_heldout
from minimal_rl_app.demo.model import ModelConfig, build_model, build_tokenizer
from minimal_rl_app.demo.task import TaskConfig, TaskSplits, completion_text, make_splits

logger = logging.getLogger(__name__)

CACHE_ENV = "MINIMAL_RL_CACHE"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$MINIMAL_RL_CACHE``, else ``$XDG_CACHE_HOME/minimal-rl``, else ``~/.cache/minimal-rl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minimal-rl"


@dataclass(frozen=True)
class WarmStartConfig:
    """The supervised run. ``target_accuracy`` is where it stops; the band is the promise we check."""

    target_accuracy: float = 0.30
    band: tuple[float, float] = (0.20, 0.50)
    lr: float = 1e-3
    warmup_steps: int = 100
    batch_size: int = 64
    max_steps: int = 3000
    check_every: int = 25  # steps between accuracy checks...
    check_every_close: int = 10  # ...and once accuracy is within 10 points of the target
    check_problems: int = 256  # held-out problems sampled once each per check
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DemoBundle:
    """What `load_or_build` returns."""

    path: Path
    model: Any
    tokenizer: Any
    splits: TaskSplits
    manifest: dict = field(default_factory=dict)

    @property
    def warmstart_accuracy(self) -> float:
        return float(self.manifest.get("warmstart", {}).get("accuracy", float("nan")))


def cache_key(task: TaskConfig, model: ModelConfig, warm: WarmStartConfig) -> str:
    blob = json.dumps(
        {"format": FORMAT_VERSION, "task": task.to_dict(), "model": model.to_dict(), "warmstart": warm.to_dict()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _lr_factor(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / max(warmup, 1))


def supervised_warmstart(
    model: Any,
    tokenizer: Any,
    splits: TaskSplits,
    config: WarmStartConfig,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train on ``problem -> \\boxed{answer}`` until sampled held-out accuracy reaches the target."""
    from tqdm.auto import tqdm

    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    # Pre-tokenise: prompt part (no loss) + completion part (loss), per training problem.
    examples = []
    for p in splits.train:
        prompt = tokenizer(demo_prompt(tokenizer, p.problem), add_special_tokens=False)["input_ids"]
        full = tokenizer.apply_chat_template(
            demo_messages(p.problem) + [{"role": "assistant", "content": completion_text(p.answer)}], tokenize=False
        )
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        examples.append((ids, len(prompt)))
    check_set = splits.heldout[: config.check_problems]
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    model.train()
    start = time.perf_counter()
    history = []
    accuracy = 0.0
    step = 0
    # No total: the run stops on measured accuracy, usually long before max_steps; the bar counts what it does.
    bar = tqdm(desc=f"warm-start (supervised, until sampled accuracy >= {config.target_accuracy:.2f})",
               disable=not progress, unit="step", leave=False)
    try:
        for step in range(1, config.max_steps + 1):
            batch = rng.sample(examples, config.batch_size)
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (ids, n_prompt) in enumerate(batch):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
                attention[row, : len(ids)] = 1
            for g in opt.param_groups:
                g["lr"] = config.lr * _lr_factor(step - 1, config.warmup_steps)
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            close = accuracy >= config.target_accuracy - 0.10
            every = config.check_every_close if close else config.check_every
            if step >= config.warmup_steps and step % every == 0:
                accuracy = evaluate_heldout(model, tokenizer, check_set, samples_per_problem=1, seed=step)[
                    "heldout_accuracy"
                ]
                history.append({"step": step, "loss": float(loss.detach()), "accuracy": accuracy})
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", acc=f"{accuracy:.2f}")
                if accuracy >= config.target_accuracy:
                    break
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    lo, hi = config.band
    if not lo <= accuracy <= hi:
        log(f"warning: warm-start ended at sampled accuracy {accuracy:.2f}, outside the {lo:.2f}-{hi:.2f} band")
    model.eval()
    return {"steps": step, "seconds": round(seconds, 1), "accuracy": accuracy, "history": history}


def _verify(path: Path) -> tuple[dict | None, str]:
    """(manifest, "") if the cache at ``path`` is intact and loads; (None, reason) otherwise."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return None, "no manifest"
    try:
        manifest = json.loads(manifest_path.read_text())
        for name, digest in manifest["files"].items():
            f = path / name
            if not f.is_file():
                return None, f"missing {name}"
            if _sha256(f) != digest:
                return None, f"checksum mismatch in {name}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable manifest ({exc})"
    return manifest, ""


def _load(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    # Load test: one forward pass must give finite logits.
    ids = tokenizer(demo_prompt(tokenizer, "1+1="), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise ValueError("non-finite logits")
    return model, tokenizer


def load_or_build(
    cache_dir: str | Path | None = None,
    task: TaskConfig | None = None,
    model_config: ModelConfig | None = None,
    warm: WarmStartConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoBundle:
    """The warm-started demo model from the cache, building (once) and caching it when needed."""
    task, model_config, warm = task or TaskConfig(), model_config or ModelConfig(), warm or WarmStartConfig()
    splits = make_splits(task)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    path = root / f"demo-{cache_key(task, model_config, warm)}"
    if path.exists():
        manifest, reason = _verify(path)
        if manifest is not None:
            try:
                model, tokenizer = _load(path)
                return DemoBundle(path, model, tokenizer, splits, manifest)
            except Exception as exc:  # noqa: BLE001 - any load failure means a broken cache
                reason = f"load test failed ({type(exc).__name__}: {exc})"
        log(f"cache at {path} is corrupt ({reason}); rebuilding it")
        shutil.rmtree(path, ignore_errors=True)

    log(f"building the demo model (first run only; cached in {path})")
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, model_config)
    if warm.max_steps > 0:
        report = supervised_warmstart(model, tokenizer, splits, warm, progress=progress, log=log)
        log(
            f"warm-start: {report['steps']} steps in {report['seconds']:.0f}s, "
            f"sampled held-out accuracy {report['accuracy']:.2f}"
        )
    else:  # test-only shortcut: random weights
        report = {"steps": 0, "seconds": 0.0, "accuracy": float("nan"), "history": []}
    # Write into a temporary folder and rename: an interrupted build never looks like a cache.
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    manifest = {
        "format": FORMAT_VERSION,
        "task": task.to_dict(),
        "model": model_config.to_dict(),
        "warmstart_config": warm.to_dict(),
        "warmstart": report,
        "files": {f.name: _sha256(f) for f in sorted(tmp.iterdir()) if f.is_file()},
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    model, tokenizer = _load(path)
    return DemoBundle(path, model, tokenizer, splits, manifest)
