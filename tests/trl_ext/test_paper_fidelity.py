"""TRL settings that must match the paper's released scripts: the plain k3 KL (no ratio weighting, TRL 1.16
defaults to it), AdamW weight decay 0.01, and the 700-token problem filter of the released data script."""

from __future__ import annotations

import json

import pytest
from mrl_testing import TRL_RECIPES, load_trl_train_script

pytest.importorskip("trl")

RECIPES = TRL_RECIPES


def test_our_configs_use_plain_k3_kl_by_default():
    from trl import GRPOConfig

    from trl_ext import RaftConfig, ReinforceRejConfig

    assert GRPOConfig(output_dir="unused", bf16=False).use_bias_correction_kl is True  # TRL's default
    assert RaftConfig(output_dir="unused", bf16=False).use_bias_correction_kl is False
    assert ReinforceRejConfig(output_dir="unused", bf16=False).use_bias_correction_kl is False


@pytest.mark.parametrize("name", sorted(p.stem for p in RECIPES.glob("*.yaml")))
def test_recipes_match_the_released_scripts(name):
    script, config, _ = load_trl_train_script().parse_args(
        ["--config", str(RECIPES / f"{name}.yaml"), "--output_dir", "unused", "--bf16", "false"]
    )
    assert config.weight_decay == 0.01
    assert config.use_bias_correction_kl is False
    assert (config.beta, script.max_problem_tokens) == (0.001, 700)


def test_long_problems_are_dropped(tmp_path):
    import mrl_testing

    tokenizer = mrl_testing.build_tokenizer(chat_template=True)  # one token per character
    rows = [{"problem": "x" * 10, "answer": "1"}, {"problem": "y" * 11, "answer": "2"}, {"problem": "z" * 3, "answer": "3"}]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = load_trl_train_script()
    args = script.TrainScriptArguments(dataset_name=str(data), max_problem_tokens=10, max_prompt_length=None)
    dataset = script.load_prompts(args, tokenizer)
    assert [row["answer"] for row in dataset] == ["1", "3"]
    assert sorted(dataset.column_names) == ["answer", "prompt"]
