"""Every verl recipe resolves through verl's own config pipeline, with the paper's hyper-parameters.

Each recipe prints its Hydra overrides with DRY_RUN=1; we compose them onto verl's ``ppo_trainer``
config exactly as ``python -m verl.trainer.main_ppo`` would (Hydra, with our SearchPathPlugin for the
``+minimal_rl=<preset>`` group), then run the CPU-side checks the trainer applies before it needs a
GPU: ``validate_config``, the estimator / policy-loss / KL-type / reward-function look-ups, and the
config dataclasses. A typo in a recipe fails here (see the negative tests at the end).
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

pytestmark = pytest.mark.slow  # ~40 s: verl import and 24 Hydra compositions

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes" / "verl"
SCRIPTS = sorted(p.stem for p in RECIPES.glob("*.sh") if p.name != "common.sh")
MODELS = {"qwen2.5-math-7b": "Qwen/Qwen2.5-Math-7B", "llama-3.2-3b-instruct": "meta-llama/Llama-3.2-3B-Instruct"}

# recipe -> (advantage estimator, policy loss, responses per prompt)
EXPECTED = {
    "raft": ("raft", "raft", 4),
    "raft_pp": ("raft", "vanilla", 4),
    "raft_pp_clip_higher": ("raft", "vanilla", 4),
    "raft_pp_no_clip": ("raft", "vanilla", 4),
    "reinforce": ("reinforce", "vanilla", 4),
    "reinforce_rej": ("reinforce_rej", "vanilla", 4),
    "reinforce_rej_std": ("reinforce_rej_std", "vanilla", 4),
    "reinforce_remove_all_wrong": ("reinforce_remove_all_wrong", "vanilla", 4),
    "reinforce_remove_all_correct": ("reinforce_remove_all_correct", "vanilla", 4),
    "reinforce_mean_zero": ("reinforce_mean_zero", "vanilla", 4),
    "grpo": ("grpo", "vanilla", 4),
    "ppo": ("gae", "vanilla", 1),
}


def recipe_overrides(script: str, model: str = "qwen2.5-math-7b", *extra: str, recipes_dir: Path = RECIPES,
                     **env: str) -> list[str]:
    """The Hydra overrides a recipe would pass to verl.trainer.main_ppo (its DRY_RUN=1 output)."""
    environment = {**os.environ, "DRY_RUN": "1", "MODEL": model, "DATA_DIR": "/data/minimal-rl", **env}
    result = subprocess.run(
        ["bash", str(recipes_dir / f"{script}.sh"), *extra], env=environment, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.strip() == line and line for line in lines), result.stdout
    return lines


def compose(overrides: list[str]):
    """verl's ppo_trainer config with ``overrides``, composed the way main_ppo's @hydra.main does."""
    import verl  # noqa: F401  (loads the verl.plugins entry points, as main_ppo's import does)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


@functools.lru_cache(maxsize=1)
def verl_default_leaves() -> dict[str, Any]:
    from omegaconf import OmegaConf

    return dict(_leaves(OmegaConf.to_container(compose([]), resolve=False)))


def check_types_against_verl_defaults(cfg) -> None:
    """Stricter than verl: a boolean or numeric setting must keep its kind. verl converts its configs
    without type checks, so ``use_dynamic_bsz=flase`` would reach the trainer as a (truthy) string."""
    from omegaconf import OmegaConf

    actual = dict(_leaves(OmegaConf.to_container(cfg, resolve=False)))
    for key, default in verl_default_leaves().items():
        value = actual.get(key)
        if default is None or value is None or any(isinstance(v, str) and "${" in v for v in (default, value)):
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            continue
        if not ok:
            raise TypeError(f"{key}={value!r}, but verl's default is {default!r} ({type(default).__name__})")


def check_like_main_ppo(cfg, local_model: str) -> None:
    """What main_ppo and the trainer check before touching a GPU, on the composed config, plus
    `check_types_against_verl_defaults`.

    The model configs (HFModelConfig) load the model's config and tokenizer, the one step that needs
    the hub; ``local_model`` (a tiny offline model directory) stands in for the hub model there.
    """
    import torch
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn, kl_penalty
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    check_types_against_verl_defaults(cfg)
    cfg = copy.deepcopy(cfg)
    cfg.actor_rollout_ref.model.path = local_model
    cfg.critic.model.path = local_model
    use_critic = need_critic(cfg)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=use_critic)
    omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
    omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    get_adv_estimator_fn(cfg.algorithm.adv_estimator)
    get_policy_loss_fn(cfg.actor_rollout_ref.actor.policy_loss.loss_mode)
    actor = cfg.actor_rollout_ref.actor
    if actor.use_kl_loss:
        logprob = torch.tensor([[-1.0, -2.0]])
        assert torch.isfinite(kl_penalty(logprob, logprob - 0.1, actor.kl_loss_type)).all()
    reward_fn = get_custom_reward_fn(cfg)
    assert reward_fn is not None
    import asyncio

    result = reward_fn(data_source="math500", solution_str="\\boxed{4}", ground_truth="4", extra_info={})
    assert asyncio.run(result)["score"] == 1.0  # compute_score_async: verl's reward loop awaits it


@pytest.fixture(scope="module")
def local_model(tmp_path_factory) -> str:
    """A tiny Qwen2 model directory (config + character-level tokenizer with a chat template), offline."""
    import mrl_testing
    from transformers import Qwen2Config

    path = tmp_path_factory.mktemp("tiny_qwen2")
    tokenizer = mrl_testing.build_tokenizer(save_dir=path, chat_template=True)
    Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                architectures=["Qwen2ForCausalLM"]).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def composed() -> dict:
    """(script, model) -> composed config, for every recipe and both of the paper's models."""
    return {(s, m): compose(recipe_overrides(s, m)) for s in SCRIPTS for m in MODELS}


def test_every_algorithm_has_a_recipe():
    assert set(SCRIPTS) == set(EXPECTED)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("script", SCRIPTS)
def test_recipe_passes_verl_checks(composed, local_model, script, model):
    check_like_main_ppo(composed[(script, model)], local_model)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("script", SCRIPTS)
def test_recipe_has_the_papers_hyper_parameters(composed, script, model):
    cfg = composed[(script, model)]
    estimator, loss, n = EXPECTED[script]
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert cfg.algorithm.adv_estimator == estimator
    assert actor.policy_loss.loss_mode == loss
    assert rollout.n == n
    assert cfg.actor_rollout_ref.model.path == MODELS[model]
    # 1024 prompts per iteration, mini-batch 512 prompts, lr 1e-6 constant, 1024 + 3072 tokens.
    assert cfg.data.train_batch_size == 1024 and actor.ppo_mini_batch_size == 512
    assert actor.optim.lr == 1e-6 and actor.optim.lr_scheduler_type == "constant"
    assert actor.optim.lr_warmup_steps_ratio == 0.0 and actor.ppo_epochs == 1
    assert cfg.data.max_prompt_length == 1024 and cfg.data.max_response_length == 3072
    assert actor.use_kl_loss is True and actor.kl_loss_coef == 0.001 and actor.kl_loss_type == "low_var_kl"
    assert actor.entropy_coeff == 0
    assert rollout.temperature == 1.0
    # Validation: average@16 on the three benchmarks.
    assert rollout.val_kwargs.n == 16 and rollout.val_kwargs.temperature == 1.0 and rollout.val_kwargs.do_sample
    assert list(cfg.data.val_files) == [
        f"/data/minimal-rl/{name}/test.parquet" for name in ("math500", "minerva_math", "olympiadbench")
    ]
    assert cfg.data.train_files == "/data/minimal-rl/numina_math/train.parquet"
    assert cfg.reward.custom_reward_function.path == "pkg://minimal_rl.reward"
    assert cfg.reward.custom_reward_function.name == "compute_score_async"
    assert cfg.trainer.val_before_train is True
    # Clipping: 0.2 both sides, except the two RAFT++ variants.
    low, high = {"raft_pp_clip_higher": (0.2, 0.28), "raft_pp_no_clip": (0.2, 1e9)}.get(script, (0.2, 0.2))
    assert (actor.clip_ratio_low, actor.clip_ratio_high) == (low, high)
    if script.startswith("raft") or script.startswith("reinforce"):
        # The paper's +-1 reward reaches the estimator (the released code's 0/1 trap is opt-in only).
        assert cfg.algorithm.minimal_rl.reward_mapping == "signed"
    if script == "ppo":
        assert cfg.critic.model.path == MODELS[model] and cfg.critic.optim.lr == 1e-5


def test_model_specific_settings(composed):
    assert composed[("raft", "qwen2.5-math-7b")].actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    assert composed[("raft", "llama-3.2-3b-instruct")].actor_rollout_ref.rollout.tensor_model_parallel_size == 1
    assert composed[("raft", "qwen2.5-math-7b")].trainer.experiment_name == "raft-qwen2.5-math-7b"
    assert composed[("ppo", "llama-3.2-3b-instruct")].trainer.experiment_name == "ppo-llama-3.2-3b-instruct"


def test_released_scripts_mini_batch_and_user_overrides_win(local_model):
    overrides = recipe_overrides("reinforce_rej", "llama-3.2-3b-instruct", "trainer.total_epochs=3", MINI_BATCH="256",
                                 N_GPUS="4")
    cfg = compose(overrides)
    check_like_main_ppo(cfg, local_model)
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 256  # 4 optimiser steps per iteration
    assert cfg.trainer.total_epochs == 3 and cfg.trainer.n_gpus_per_node == 4


def test_recipe_runs_main_ppo_with_exactly_the_printed_overrides(tmp_path):
    """Without DRY_RUN, the recipe execs `$PYTHON -m verl.trainer.main_ppo <the same overrides>`."""
    argv_file = tmp_path / "argv.txt"
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {argv_file}\n")
    fake_python.chmod(0o755)
    env = {**os.environ, "MODEL": "llama-3.2-3b-instruct", "DATA_DIR": "/data/minimal-rl", "PYTHON": str(fake_python)}
    env.pop("DRY_RUN", None)
    subprocess.run(["bash", str(RECIPES / "raft_pp.sh"), "trainer.nnodes=2"], env=env, check=True, timeout=60)
    assert argv_file.read_text().splitlines() == [
        "-m", "verl.trainer.main_ppo", *recipe_overrides("raft_pp", "llama-3.2-3b-instruct", "trainer.nnodes=2")
    ]


def test_recipe_data_paths_are_where_prepare_data_writes(shared_data, tmp_path):
    """The recipes read exactly the files `minimal-rl prepare-data` writes under DATA_DIR."""
    from minimal_rl_app.prepare import prepare_dataset

    numina = tmp_path / "numina.jsonl"
    numina.write_text('{"problem": "What is $2+2$?", "solution": "It is $\\\\boxed{4}$."}\n')
    written = {prepare_dataset("numina_math", str(tmp_path), input_path=str(numina), formats=("verl",)).outputs["verl"]}
    for name in ("math500", "minerva_math", "olympiadbench"):
        summary = prepare_dataset(name, str(tmp_path), input_path=str(shared_data / f"{name}.jsonl"), formats=("verl",),
                                  limit=5)
        written.add(summary.outputs["verl"])
    cfg = compose(recipe_overrides("reinforce_rej", DATA_DIR=str(tmp_path)))
    assert {cfg.data.train_files, *cfg.data.val_files} == written
    assert all(Path(p).is_file() for p in written)


# --------------------------------------------------------------------------------------------
# Negative tests: a typo anywhere in a recipe fails these checks.
# --------------------------------------------------------------------------------------------


def copy_recipes_with(tmp_path: Path, file: str, old: str, new: str) -> Path:
    target = tmp_path / "verl"
    shutil.copytree(RECIPES, target)
    text = (target / file).read_text()
    assert old in text
    (target / file).write_text(text.replace(old, new))
    return target


def test_typo_in_a_key_of_the_shared_settings_fails(tmp_path):
    from hydra.errors import ConfigCompositionException

    broken = copy_recipes_with(tmp_path, "common.sh", "actor_rollout_ref.actor.optim.lr=", "actor_rollout_ref.actor.optim.lrr=")
    with pytest.raises(ConfigCompositionException, match="lrr"):
        compose(recipe_overrides("raft", recipes_dir=broken))


def test_typo_in_a_preset_name_fails(tmp_path):
    from hydra.errors import HydraException

    broken = copy_recipes_with(tmp_path, "reinforce_rej.sh", "+minimal_rl=reinforce_rej", "+minimal_rl=reinforce_rejj")
    with pytest.raises(HydraException, match="reinforce_rejj"):
        compose(recipe_overrides("reinforce_rej", recipes_dir=broken))


@pytest.mark.parametrize(
    "bad_override, error",
    [
        ("algorithm.adv_estimator=grpoo", "grpoo"),  # unknown estimator
        ("actor_rollout_ref.actor.policy_loss.loss_mode=raftt", "raftt"),  # unknown policy loss
        ("actor_rollout_ref.actor.kl_loss_type=low_var_kll", ""),  # unknown KL estimator
        ("actor_rollout_ref.actor.use_dynamic_bsz=flase", "flase"),  # not a boolean
        ("actor_rollout_ref.actor.use_dynamic_bsz=false", "micro_batch_size"),  # then micro-batches are needed
        ("actor_rollout_ref.actor.loss_agg_mode=token_mean", "loss_agg_mode"),  # '_' for '-'
        ("reward.custom_reward_function.name=compute_scores", "compute_scores"),  # no such reward function
    ],
)
def test_typo_in_a_value_fails(local_model, bad_override, error):
    cfg = compose(recipe_overrides("grpo", "qwen2.5-math-7b", bad_override))
    with pytest.raises(Exception, match=error):
        check_like_main_ppo(cfg, local_model)


def test_default_data_dir_is_data_under_the_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
    env["DRY_RUN"] = "1"
    out = subprocess.run(["bash", str(RECIPES / "raft.sh")], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=60).stdout.splitlines()
    assert f"data.train_files={tmp_path}/data/numina_math/train.parquet" in out
