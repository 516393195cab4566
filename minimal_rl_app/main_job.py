"""A run: its settings and name, training with the TRL trainers of trl_ext, resuming from a checkpoint,
and the held-out evaluation at intervals. This is what ``minimal-rl train`` and ``minimal-rl compare`` run.

There is no separate training loop: every algorithm of `minimal_rl.table` is a trl_ext subclass of
`trl.GRPOTrainer` (`trl_ext.build_trainer`: RAFT, RAFT++, Reinforce-Rej and the Reinforce ablations, GRPO with or
without a sample filter), driven by ``trainer.train()``. `minimal_rl_app.run_log` turns TRL's per-step logs into
the spec's metrics and keeps ``metrics.json`` valid after every step; `minimal_rl_app.outputs` lists every file
written, so ``--overwrite`` removes only those.

Resume: TRL saves a checkpoint every ``save_every`` steps under ``<run>/trl/``; ``resume`` hands the latest one to
``trainer.train(resume_from_checkpoint=...)`` (model, optimiser, scheduler, RNG states, data position) and cuts
``metrics.json`` back to that step, so the resumed run logs what the uninterrupted one would have.
"""

from __future__ import annotations

import copy
import json
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from minimal_rl.reward import math_verify_reward
from minimal_rl.table import ALGORITHMS, SAMPLE_FILTERS, check_host_sampling, host_can_sample

# torch, transformers and TRL are imported inside the functions: the CLI's parser reads run names from here.
if TYPE_CHECKING:
    from transformers import TrainerCallback

# Every algorithm of the table that trl_ext can sample for trains here (trl_ext.build_trainer picks its trainer).
TRAINABLE = tuple(name for name in ALGORITHMS if host_can_sample(name, "trl_ext"))
# What one run writes into its folder (relative paths; the manifest lists the files inside model/ and trl/).
RUN_FILES = ("metrics.json", "metrics.png", "heldout.jsonl", "model", "trl")


def run_name(algorithm: str, sample_filter: str | None = None) -> str:
    """A run's name: the algorithm, or ``algorithm+filter`` when a sample filter replaces its own."""
    return algorithm if sample_filter is None else f"{algorithm}+{sample_filter}"


def parse_run_name(name: str) -> tuple[str, str | None]:
    """``"grpo+drop_uniform"`` -> ("grpo", "drop_uniform"); ``"raft"`` -> ("raft", None) (inverse of `run_name`)."""
    algorithm, _, sample_filter = name.partition("+")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
    check_host_sampling(algorithm, "trl_ext")  # a row trl_ext cannot sample: say what is missing
    if sample_filter and sample_filter not in SAMPLE_FILTERS:
        raise ValueError(f"unknown sample filter {sample_filter!r} in {name!r}; choose one of: {', '.join(SAMPLE_FILTERS)}")
    return algorithm, sample_filter or None


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
    # TRL checkpoint every N optimiser steps (0: none); a multiple of mini_batches, so a resumed run starts
    # at a rollout boundary (TRL regenerates there) and repeats the uninterrupted run exactly.
    save_every: int = 0
    # The embedded task's knobs (`minimal_rl_app.demo.task.TaskConfig.to_dict`; None with --model), recorded so a
    # run says which problems it trained on and --resume refuses another task.
    task: dict | None = None

    @property
    def name(self) -> str:
        return run_name(self.algorithm, self.sample_filter)

    def __post_init__(self) -> None:
        check_host_sampling(self.algorithm, "trl_ext")  # a row trl_ext cannot sample: say what is missing
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
        if self.save_every < 0 or self.save_every % self.mini_batches:
            raise ValueError(
                f"--save-every {self.save_every} must be a multiple of --mini-batches {self.mini_batches} "
                "(checkpoints at rollout boundaries), or 0"
            )
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be > 0")


class RecordingReward:
    """`minimal_rl.reward.math_verify_reward` (+1 / -1) that also keeps the last batch's scores, so every
    algorithm (stock GRPO included) logs the same accuracy and group-kind fractions, and counts the response
    tokens of everything it scores: every response generated for training (all of Reinforce-Ada's rounds, not only
    the kept rows), the honest budget to compare algorithms by. Counted in this process (the demo runs one)."""

    __name__ = "math_verify_reward"

    def __init__(self) -> None:
        self.last_scores: list[float] = []
        self._step: int | None = None
        self.tokens_generated = 0  # response tokens scored so far (EOS included, padding not)
        self.responses_generated = 0

    def __call__(self, completions: list[Any], answer: list[Any], trainer_state: Any = None,
                 completion_ids: list[Any] | None = None, **kwargs: Any) -> list[float]:
        scores = math_verify_reward(completions, answer)
        if completion_ids is not None:  # TRL passes the ids, cut after EOS
            self.tokens_generated += sum(len(ids) for ids in completion_ids)
        self.responses_generated += len(completions)
        step = getattr(trainer_state, "global_step", None)
        if step is not None and step == self._step:  # another of Reinforce-Ada's rounds for the same batch
            self.last_scores.extend(scores)
        else:
            self.last_scores = list(scores)
        self._step = step
        return scores


def build_run_trainer(
    settings: TrainSettings,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    output_dir: str | Path,
    reward: RecordingReward,
    callbacks: Sequence[TrainerCallback] = (),
    extra_config: dict | None = None,
) -> Any:
    """The configured TRL trainer of ``settings.algorithm`` (made by `trl_ext.build_trainer`), with
    ``settings.sample_filter``, checkpoints every ``settings.save_every`` steps, and the demo's fixed choices."""
    import torch
    from transformers.trainer_callback import PrinterCallback

    from minimal_rl.adaptive import DEFAULT_ROUND_REPEAT
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
        save_strategy="steps" if settings.save_every else "no",
        save_steps=settings.save_every or 500,
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
    if ALGORITHMS[settings.algorithm].adaptive:  # the released round size, or n when more are kept per prompt
        config["round_repeat"] = max(DEFAULT_ROUND_REPEAT, settings.num_generations)
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


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (what `timeout`, `kill` and batch schedulers send) handled like Ctrl-C: KeyboardInterrupt, so the
    run is marked ``interrupted``, its partial figure drawn, and it can be resumed."""

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_point(run_dir: Path) -> tuple[dict, Path] | None:
    """(the earlier run's metrics cut back to its last checkpoint, that checkpoint) or None if there is none."""
    try:
        payload = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    checkpoint = payload.get("checkpoint") or {}
    path = run_dir / str(checkpoint.get("path", ""))
    if not checkpoint or not (path / "trainer_state.json").is_file():
        return None
    step = int(checkpoint["step"])
    payload["steps"] = [s for s in payload.get("steps", []) if s["step"] <= step]
    payload["evals"] = [e for e in payload.get("evals", []) if e["step"] <= step]
    # Time spent so far, steps past the checkpoint included (they are done again).
    payload["train_seconds_before_resume"] = payload.get("train_seconds_before_resume", 0.0) + (payload.get("train_seconds") or 0.0)
    for key in ("summary", "train_seconds", "wall_seconds_total", "checkpoint"):
        payload.pop(key, None)
    payload["checkpoint"] = checkpoint
    return payload, path


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
    outputs: Any = None,
    rel: str = "",
    resume: tuple[dict, Path] | None = None,
    prompt_template: str | None = None,
) -> dict:
    """Train ``settings.algorithm`` from the model at ``model_path``; returns the final metrics payload.

    ``train_rows`` are ``{"problem", "answer"}`` dicts; ``conversational_prompt`` turns a problem into chat
    messages. ``evaluate_factory(reference_model)`` returns ``evaluate(model, step) -> dict`` (held-out accuracy
    and KL to the reference, the initial model). ``outputs`` (`minimal_rl_app.outputs.OutputDir`) lists every
    file written, under ``rel``; ``resume`` is `resume_point`'s answer. KeyboardInterrupt is re-raised after
    the metrics file is marked ``interrupted``.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from minimal_rl.prompts import build_messages
    from minimal_rl_app.run_log import MainJobCallback, summarize

    prefix = f"{rel}/" if rel else ""
    conversational_prompt = conversational_prompt or build_messages
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dtype = torch.float32 if not torch.cuda.is_available() else "auto"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    reference = copy.deepcopy(model).eval()  # the initial model (also when resuming: KL is to the start)
    for p in reference.parameters():
        p.requires_grad_(False)
    dataset = Dataset.from_list([{"prompt": conversational_prompt(r["problem"]), "answer": str(r["answer"])} for r in train_rows])
    reward = RecordingReward()
    metrics_path = output_dir / "metrics.json"
    if outputs is not None:
        outputs.add(f"{prefix}metrics.json")
    header = {**header, "settings": asdict(settings)}
    callback = MainJobCallback(
        settings, reward, evaluate_factory(reference), metrics_path, header, progress=progress, log=log,
        log_every=log_every, outputs=outputs, trl_rel=f"{prefix}trl", resumed=resume[0] if resume else None,
    )
    trainer = build_run_trainer(
        settings, model, tokenizer, dataset, output_dir / "trl", reward, callbacks=[callback], extra_config=extra_config
    )
    t0 = time.perf_counter()
    seconds_before = float(callback.payload.get("train_seconds_before_resume", 0.0))
    try:
        trainer.train(resume_from_checkpoint=str(resume[1]) if resume else None)
    except KeyboardInterrupt:
        if outputs is not None:
            outputs.adopt_tree(f"{prefix}trl", callback._trl_before)
        callback.payload["status"] = "interrupted"
        callback.payload["train_seconds"] = round(time.perf_counter() - t0, 1)  # this attempt only
        callback.on_train_end(None, None, None)
        callback._write()
        raise
    if outputs is not None:  # TRL's model card, TensorBoard event files, ...
        outputs.adopt_tree(f"{prefix}trl", callback._trl_before)
    callback.payload["status"] = "complete"
    callback.payload["train_seconds"] = round(time.perf_counter() - t0 + seconds_before, 1)
    callback.payload["summary"] = summarize(callback.payload)
    callback._write()
    if save_model:
        def save(folder: Path) -> None:
            trainer.model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            if prompt_template:
                from minimal_rl_app.templates import record_template

                record_template(folder, prompt_template)

        if outputs is not None:
            outputs.write_tree(f"{prefix}model", save)
        else:
            save(output_dir / "model")
    return callback.payload


def train_one(name: str, args: Any, source: Any, outputs: Any, rel: str = "", log: Callable[[str], None] = print) -> dict:
    """One run (``algorithm`` or ``algorithm+filter``) of ``source`` (`minimal_rl_app.sources.RunSource`) into
    ``outputs.root / rel``: metrics.json, metrics.png, heldout.jsonl, model/ and trl/ checkpoints. ``args`` are
    the parsed run arguments; ``args.resume`` continues from the run's last checkpoint when there is one."""
    from minimal_rl_app.demo.task import Problem
    from minimal_rl_app.heldout import evaluate_heldout
    from minimal_rl_app.plots import plot_run

    settings = settings_from(name, args, source)
    out = outputs.root / rel if rel else outputs.root
    prefix = f"{rel}/" if rel else ""
    resume = resume_point(out) if getattr(args, "resume", False) else None
    changed = sorted(k for k, v in asdict(settings).items()
                     if resume and resume[0].get("settings", {}).get(k) != v and k != "save_every")
    if changed:  # the command checks this first (jobs._check_resume); a direct caller gets it here
        raise ValueError(f"--resume: {out} was trained with other settings ({', '.join(changed)}); use the same ones")
    if resume:
        resume[0]["settings"]["save_every"] = settings.save_every
    heldout = [Problem(r["problem"], r["answer"]) for r in source.heldout_rows[: args.eval_problems]]

    def evaluate_factory(reference: Any) -> Callable[[Any, int], dict]:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source.model_path)

        def evaluate(model: Any, step: int) -> dict:
            # Same seed at every evaluation: differences between evaluations are the model's, not the dice's.
            return evaluate_heldout(
                model, tokenizer, heldout, samples_per_problem=args.eval_samples, seed=args.seed + 10_000,
                reference_model=reference, max_new_tokens=source.max_completion_length, messages=source.messages,
            )

        return evaluate

    out.mkdir(parents=True, exist_ok=True)
    # The held-out problems as JSONL, so `minimal-rl eval --data <out>/heldout.jsonl` can score the result.
    outputs.add(f"{prefix}heldout.jsonl", f"{prefix}metrics.png")
    (out / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in source.heldout_rows))
    report_to = [r for r in (getattr(args, "report_to", None) or []) if r != "none"] or ["none"]
    extra: dict[str, Any] = {"report_to": report_to}
    if args.use_vllm:
        extra.update(use_vllm=True, vllm_mode="colocate")
    payload = run_training(
        settings, source.model_path, source.train_rows, evaluate_factory, out, source.header,
        progress=not args.no_progress, log=log, conversational_prompt=source.messages, log_every=args.log_every,
        extra_config=extra, outputs=outputs, rel=rel, resume=resume, prompt_template=source.template,
    )
    plot_run(payload, out / "metrics.png", title=f"{name} on {source.header.get('model', '')}")
    return payload


def settings_from(name: str, args: Any, source: Any = None) -> TrainSettings:
    """The settings of run ``name`` from the parsed arguments (ValueError with one line when they clash)."""
    algorithm, sample_filter = parse_run_name(name)
    same_name = ("steps", "prompts_per_step", "num_generations", "mini_batches", "beta", "eval_every",
                 "eval_problems", "eval_samples", "seed")
    save_every = args.save_every
    if save_every is None:  # default: about every 50 steps, at a rollout boundary
        save_every = -(-50 // args.mini_batches) * args.mini_batches
    from minimal_rl_app.sources import task_settings

    return TrainSettings(
        algorithm=algorithm, sample_filter=sample_filter, save_every=save_every, task=task_settings(args),
        learning_rate=source.learning_rate if source else (args.lr or 1e-4),
        max_completion_length=source.max_completion_length if source else (args.max_completion_length or 16),
        **{key: getattr(args, key) for key in same_name},
    )


def plot_partial(out: Path, name: str) -> None:
    """After an interruption: plot what the (atomically written) metrics file holds."""
    from minimal_rl_app.plots import plot_run

    try:
        plot_run(json.loads((out / "metrics.json").read_text()), out / "metrics.png", title=f"{name} (interrupted)")
    except Exception:  # noqa: BLE001 - plotting a partial run is best effort
        pass
