"""Train with RAFT / RAFT++ / Reinforce-Rej (or GRPO, for reference, with or without a sample filter) on math
prompts, TRL style.

    accelerate launch recipes/trl/train.py --config recipes/trl/reinforce_rej.yaml
    accelerate launch recipes/trl/train.py --config recipes/trl/raft.yaml --learning_rate 2e-6  # flags override

The YAML holds the script arguments below, the trainer's config fields (the config class of `algorithm:`, from
`trl_ext.trainer_classes`: RaftConfig, ReinforceRejConfig or FilteredGRPOConfig) and TRL's ModelConfig fields; an
unknown key is an error. Prompts are
built with the paper's template (minimal_rl.prompts) through the model's chat template; the reward is
Math-Verify (minimal_rl.reward.math_verify_reward, +1 / -1) against the `answer` column.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("minimal_rl.recipes.trl")

@dataclass
class TrainScriptArguments:
    """What the script itself reads: which data (the algorithm is the trainer config's `algorithm` field)."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A JSON / JSONL file, or a dataset name or folder for datasets.load_dataset."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "datasets.load_dataset config name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    problem_column: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_column: str = field(
        default="answer",
        metadata={"help": "Column holding the reference answer, or a worked solution with --answer_from_solution."},
    )
    answer_from_solution: bool = field(
        default=False,
        metadata={"help": "Take the reference answer from the last \\boxed{} of the answer column (e.g. Numina-Math's "
                  "`solution`); rows without one are dropped."},
    )
    max_prompt_length: int | None = field(
        default=1024,
        metadata={"help": "Drop prompts longer than this many tokens after the chat template (the paper's scripts "
                  "use 1024; TRL 1.16 does not truncate prompts). None keeps all."},
    )
    max_problem_tokens: int | None = field(
        default=None,
        metadata={"help": "Drop problems longer than this many tokens (the problem text alone, no special tokens), "
                  "the paper's filter (the released data script and `minimal-rl prepare-data` use 700). None keeps all."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N prompts."})


def _algorithm(argv: Sequence[str]) -> str:
    """`algorithm` from the command line, else from the --config YAML, else RaftConfig's default."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--algorithm" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--algorithm="):
            return arg.split("=", 1)[1]
    if "--config" in argv:
        import yaml

        with open(argv[argv.index("--config") + 1]) as f:
            config = yaml.safe_load(f) or {}
        if isinstance(config, dict) and "algorithm" in config:
            return str(config["algorithm"])
    return "raft"


def parse_args(argv: Sequence[str] | None = None) -> tuple[Any, Any, Any]:
    """(script arguments, trainer config, ModelConfig) from a YAML (--config) and command-line flags."""
    from trl import ModelConfig, TrlParser

    from trl_ext import trainer_classes

    argv = list(sys.argv[1:] if argv is None else argv)
    config_class, _ = trainer_classes(_algorithm(argv))
    parser = TrlParser((TrainScriptArguments, config_class, ModelConfig))
    return parser.parse_args_and_config(argv)


def load_prompts(script_args: TrainScriptArguments, tokenizer: Any = None):
    """The training set as TRL wants it: a conversational `prompt` column and the `answer` column."""
    from datasets import load_dataset

    from minimal_rl.prompts import build_messages
    from minimal_rl.reward import last_boxed

    name = script_args.dataset_name
    if name is None:
        raise ValueError("set dataset_name (a JSONL file with `problem` and `answer`, or a datasets name)")
    if name.endswith((".json", ".jsonl")):
        dataset = load_dataset("json", data_files=name, split=script_args.dataset_train_split)
    else:
        dataset = load_dataset(name, script_args.dataset_config, split=script_args.dataset_train_split)
    if script_args.max_train_samples is not None:
        dataset = dataset.select(range(min(script_args.max_train_samples, len(dataset))))

    def to_prompt(row):
        answer = row[script_args.answer_column]
        if script_args.answer_from_solution:
            answer = last_boxed(str(answer))
        problem = str(row[script_args.problem_column])
        return {"prompt": build_messages(problem), "answer": answer, "problem": problem}

    dataset = dataset.map(to_prompt, remove_columns=dataset.column_names)
    before = len(dataset)
    dataset = dataset.filter(lambda row: row["answer"] is not None and str(row["answer"]).strip() != "")
    if script_args.max_problem_tokens is not None and tokenizer is not None:
        most = script_args.max_problem_tokens
        dataset = dataset.filter(lambda row: len(tokenizer(row["problem"], add_special_tokens=False)["input_ids"]) <= most)
    dataset = dataset.remove_columns("problem")
    if script_args.max_prompt_length is not None and tokenizer is not None:
        limit = script_args.max_prompt_length
        dataset = dataset.filter(
            lambda row: len(tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)) <= limit
        )
    if len(dataset) < before:
        logger.warning("dropped %d of %d prompts (no answer, a problem over max_problem_tokens, or a prompt over "
                       "max_prompt_length)", before - len(dataset), before)
    return dataset


def main(argv: Sequence[str] | None = None) -> None:
    from transformers import AutoTokenizer
    from trl import get_peft_config

    from minimal_rl.reward import math_verify_reward

    from trl_ext import trainer_classes

    script_args, training_args, model_args = parse_args(argv)
    _, trainer_class = trainer_classes(training_args.algorithm)
    model_kwargs = dict(training_args.model_init_kwargs or {})
    model_kwargs.setdefault("revision", model_args.model_revision)
    if model_args.attn_implementation is not None:
        model_kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    if model_args.dtype is not None:
        model_kwargs.setdefault("dtype", model_args.dtype)
    training_args.model_init_kwargs = model_kwargs
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code
    )
    tokenizer.padding_side = "left"
    trainer = trainer_class(
        model=model_args.model_name_or_path,
        reward_funcs=math_verify_reward,
        args=training_args,
        train_dataset=load_prompts(script_args, tokenizer),
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)


if __name__ == "__main__":
    main()
