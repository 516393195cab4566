"""recipes/trl: every YAML resolves through TrlParser into the right config, a typo fails, and the script
trains one step end to end on a tiny offline model (no vLLM: this machine has no GPU)."""

from __future__ import annotations

import json

import pytest
import yaml
from mrl_testing import TRL_RECIPES, load_trl_train_script

RECIPES = TRL_RECIPES
NUM_PROCESSES = 8  # the recipes' single node


def parse(path, *flags):
    # bf16 needs a GPU at config time; everything else is parsed as written.
    return load_trl_train_script().parse_args(["--config", str(path), "--output_dir", "unused", "--bf16", "false", *flags])


EXPECTED = {
    "raft": ("RaftConfig", {"algorithm": "raft", "epsilon_high": None}),
    "raft_pp": ("RaftConfig", {"algorithm": "raft_pp", "epsilon_high": None}),
    "raft_pp_clip_higher": ("RaftConfig", {"algorithm": "raft_pp_clip_higher", "epsilon_high": 0.28}),
    "raft_pp_no_clip": ("RaftConfig", {"algorithm": "raft_pp_no_clip", "epsilon_high": 1e9}),
    "reinforce_rej": ("ReinforceRejConfig", {"algorithm": "reinforce_rej", "reward_mapping": "signed"}),
    "grpo": ("FilteredGRPOConfig", {"scale_rewards": "group", "sample_filter": "none"}),
}


def test_every_recipe_is_tested():
    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_resolves_to_the_papers_settings(name):
    path = RECIPES / f"{name}.yaml"
    script, config, model = parse(path)
    class_name, fields = EXPECTED[name]
    assert type(config).__name__ == class_name
    for field, value in fields.items():
        assert getattr(config, field) == value, field
    assert yaml.safe_load(path.read_text())["bf16"] is True
    assert (config.learning_rate, config.lr_scheduler_type.value, config.temperature, config.epsilon) == (1e-6, "constant", 1.0, 0.2)
    assert (config.num_generations, config.loss_type, config.beta, config.use_vllm) == (4, "dapo", 0.001, True)
    assert config.max_completion_length == 3072 and script.max_prompt_length == 1024
    rows_per_micro_step = config.per_device_train_batch_size * NUM_PROCESSES
    assert rows_per_micro_step * config.steps_per_generation == 1024 * 4  # 1024 prompts per iteration
    assert rows_per_micro_step * config.gradient_accumulation_steps == 512 * 4  # the paper's mini-batch
    assert model.model_name_or_path == "Qwen/Qwen2.5-Math-7B"


def test_flags_override_the_yaml():
    _, config, _ = parse(RECIPES / "raft.yaml", "--learning_rate", "2e-6", "--algorithm", "raft_pp")
    assert config.learning_rate == 2e-6 and config.algorithm == "raft_pp" and type(config).__name__ == "RaftConfig"
    _, config, _ = parse(RECIPES / "grpo.yaml", "--sample_filter", "drop_uniform")
    assert config.sample_filter == "drop_uniform"


@pytest.mark.parametrize(
    "name, typo",
    [("raft", {"learning_rat": 1e-6}), ("reinforce_rej", {"importance_sampling": True}), ("grpo", {"filter": "none"})],
)
def test_unknown_or_misplaced_key_fails(tmp_path, name, typo):
    config = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    config.update(typo)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="Unknown arguments"):
        parse(path)


def test_bad_value_fails(tmp_path):
    config = yaml.safe_load((RECIPES / "reinforce_rej.yaml").read_text())
    config["algorithm"] = "reinforce_rejj"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises((ValueError, SystemExit)):
        parse(path)


def test_train_script_runs_one_step_on_a_tiny_model(tmp_path, trl_trains_on_cpu):
    import mrl_testing as helpers

    tokenizer = helpers.build_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    helpers.build_model(tokenizer, save_dir=tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{a}+{a}", "solution": f"So \\boxed{{{2 * a}}}."}) + "\n" for a in range(4)))
    out = tmp_path / "out"
    load_trl_train_script().main([
        "--config", str(RECIPES / "reinforce_rej.yaml"), "--model_name_or_path", str(tmp_path / "model"),
        "--dataset_name", str(data), "--max_prompt_length", "4000", "--output_dir", str(out),
        "--use_vllm", "false", "--bf16", "false", "--use_cpu", "true", "--dtype", "float32", "--attn_implementation", "eager",
        "--gradient_checkpointing", "false", "--beta", "0.0", "--max_steps", "1", "--per_device_train_batch_size", "16",
        "--steps_per_generation", "1", "--gradient_accumulation_steps", "1", "--max_completion_length", "4",
        "--save_strategy", "no", "--log_completions", "false",
    ])
    assert (out / "model.safetensors").exists()


def test_prompts_use_the_papers_template_and_boxed_answers(tmp_path):
    from minimal_rl.prompts import PROMPT_SUFFIX, SYSTEM_PROMPT

    data = tmp_path / "data.jsonl"
    rows = [{"problem": "1+1", "solution": "two: \\boxed{2}"}, {"problem": "no answer", "solution": "none"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = load_trl_train_script()
    args = script.TrainScriptArguments(dataset_name=str(data), answer_column="solution", answer_from_solution=True)
    dataset = script.load_prompts(args)
    assert len(dataset) == 1 and dataset[0]["answer"] == "2"
    assert dataset[0]["prompt"] == [
        {"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"1+1 {PROMPT_SUFFIX}"}
    ]
