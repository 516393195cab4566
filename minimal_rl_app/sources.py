"""What a run starts from: the embedded demo (a warm-started tiny model, built once and cached) or
``--model`` with ``--dataset`` JSONL. `check_source` validates everything a user gave, touching nothing;
`load_source` then builds or loads (the demo's warm-start can take a minute)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable

from minimal_rl_app.inputs import UsageError, check_model, read_jsonl
from minimal_rl_app.templates import messages_for


@dataclass
class RunSource:
    """A model folder/id, training rows, held-out rows, the prompt format."""

    model_path: str
    train_rows: list[dict]
    heldout_rows: list[dict]
    messages: Callable[[str], list[dict[str, str]]]
    max_completion_length: int
    learning_rate: float
    template: str = "paper"
    header: dict = field(default_factory=dict)


def template_of(args: argparse.Namespace) -> str:
    """``auto``: plain for the embedded model, paper otherwise."""
    if args.prompt_template != "auto":
        return args.prompt_template
    return "plain" if args.model is None else "paper"


TASK_OPTIONS = ("--operand-range", "--operations", "--allow-negative")


def task_config(args: argparse.Namespace) -> Any:
    """The embedded task's `TaskConfig` from the task options (ValueError with one line when they are bad)."""
    from minimal_rl_app.demo.task import TaskConfig

    kw: dict[str, Any] = {"num_heldout": 64} if getattr(args, "tiny_model", False) else {}
    if getattr(args, "operand_range", None) is not None:
        kw["min_operand"], kw["max_operand"] = args.operand_range
    if getattr(args, "operations", None):
        kw["operations"] = tuple(dict.fromkeys(args.operations))
    kw["allow_negative"] = bool(getattr(args, "allow_negative", False))
    try:
        return TaskConfig(**kw)
    except ValueError as exc:
        raise ValueError(f"--operand-range / --operations: {exc}") from None


def task_settings(args: argparse.Namespace) -> dict | None:
    """The embedded task's knobs as recorded in a run's settings (None with ``--model``: the data says it all)."""
    if getattr(args, "model", None) is not None:
        return None
    return task_config(args).to_dict()


def check_source(args: argparse.Namespace) -> RunSource | None:
    """Validate the model and data arguments; for ``--model`` returns the source (its data read and checked)."""
    template = template_of(args)
    if args.model is None:
        if args.dataset or args.eval_data:
            raise UsageError("--dataset / --eval-data need --model (the embedded model only knows the demo task)")
        if not 0.0 < args.warmstart_target < 1.0:
            raise UsageError(f"--warmstart-target must be in (0, 1), got {args.warmstart_target}")
        try:
            config = task_config(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        from minimal_rl_app.demo.task import all_problems

        if len(all_problems(config)) <= config.num_heldout:
            raise UsageError(f"--operand-range {config.min_operand} {config.max_operand} with --operations "
                             f"{' '.join(config.operations)} allows {len(all_problems(config))} problems: too few to hold "
                             f"out {config.num_heldout} and train on the rest")
        return None
    given = [o for o, v in zip(TASK_OPTIONS, (getattr(args, 'operand_range', None), getattr(args, 'operations', None),
                                                  getattr(args, 'allow_negative', False))) if v]
    if given:
        raise UsageError(f"{', '.join(given)} shape the embedded task; with --model the data is --dataset")
    check_model(args.model)
    if not args.dataset:
        raise UsageError("--model needs --dataset JSONL files (`problem`, `answer`) to train on")
    rows = read_jsonl(args.dataset, "--dataset")
    if args.eval_data:
        heldout = read_jsonl(args.eval_data, "--eval-data")
    else:
        if len(rows) <= args.eval_problems:
            raise UsageError(f"--dataset has {len(rows)} rows: too few to hold out --eval-problems={args.eval_problems}")
        rows, heldout = rows[: -args.eval_problems], rows[-args.eval_problems :]
    return RunSource(
        model_path=args.model, train_rows=rows, heldout_rows=heldout, messages=messages_for(template),
        max_completion_length=args.max_completion_length or 1024, learning_rate=args.lr or 1e-6, template=template,
        header={"model": args.model, "dataset": args.dataset, "eval_data": args.eval_data},
    )


def load_source(args: argparse.Namespace, checked: RunSource | None, log: Callable[[str], None] = print) -> RunSource:
    """``checked`` (a ``--model`` source) as is, or the embedded demo, building/caching its warm-start."""
    if checked is not None:
        return checked
    from minimal_rl_app.demo.evaluate import MAX_NEW_TOKENS
    from minimal_rl_app.demo.model import ModelConfig
    from minimal_rl_app.demo.warmstart import WarmStartConfig, load_or_build

    warm_kw: dict[str, Any] = {"target_accuracy": args.warmstart_target}
    if args.warmstart_max_steps is not None:
        warm_kw["max_steps"] = args.warmstart_max_steps
    model_cfg = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64) if args.tiny_model else ModelConfig()
    task = task_config(args)  # part of the cache key: another setting builds (and caches) its own model
    bundle = load_or_build(args.cache_dir, task, model_cfg, WarmStartConfig(**warm_kw), progress=not args.no_progress, log=log)
    log(f"demo model: {bundle.path} (warm-start sampled accuracy {bundle.warmstart_accuracy:.2f})")
    template = template_of(args)
    return RunSource(
        model_path=str(bundle.path),
        train_rows=[p.to_dict() for p in bundle.splits.train],
        heldout_rows=[p.to_dict() for p in bundle.splits.heldout],
        messages=messages_for(template),
        max_completion_length=args.max_completion_length or MAX_NEW_TOKENS,
        learning_rate=args.lr or 1e-4,
        template=template,
        header={"model": "embedded demo (tiny Llama, character tokenizer)", "model_path": str(bundle.path),
                "task": bundle.manifest.get("task"), "warmstart": bundle.manifest.get("warmstart")},
    )
