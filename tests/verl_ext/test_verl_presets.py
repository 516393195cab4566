"""Hydra presets (``+minimal_rl=<name>``) composed with verl's own ``ppo_trainer`` config, checked with
verl's ``validate_config``, and the early failure when the plugin is disabled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import verl
from hydra import compose, initialize_config_dir
from verl import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config

from hydra_plugins.minimal_rl_searchpath.registration_check import (
    MinimalRLNotRegisteredError,
    RegistrationCheck,
    RegistrationRefused,
)
from hydra_plugins.minimal_rl_searchpath.verl_host import adaptive_unsupported_reason
from mrl_verl import HAS_DROP_SAMPLER, needs_drop_sampler, needs_entry_points
from omegaconf import OmegaConf

VERL_CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")
PRESET_DIR = Path(__file__).resolve().parents[2] / "verl_ext" / "config" / "minimal_rl"

from minimal_rl.table import ALGORITHMS, VERL_LOSS_OF, preset_names  # noqa: E402

# Every algorithm preset: the table's estimator, verl's loss for its loss kind, its clip variant.
PRESETS = {
    name: (ALGORITHMS[name].estimator, VERL_LOSS_OF[ALGORITHMS[name].loss], ALGORITHMS[name].clip_ratio_high or 0.2)
    for name in preset_names()
    if name in ALGORITHMS
}
# What a user adds anyway (micro batch sizes have no default in verl).
USER_OVERRIDES = [
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
]


def compose_preset(preset: str, *extra: str):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        return compose("ppo_trainer", overrides=[f"+minimal_rl={preset}", *USER_OVERRIDES, *extra])


def test_every_preset_file_is_tested():
    assert {p.stem for p in PRESET_DIR.glob("*.yaml") if not p.stem.startswith("_")} == set(preset_names())
    # the hand-written rows of the spec, as a check on the table itself
    assert PRESETS["raft"] == ("raft", "raft", 0.2) and PRESETS["raft_pp"] == ("raft", "vanilla", 0.2)
    assert PRESETS["raft_pp_no_clip"] == ("raft", "vanilla", 1e9)
    assert PRESETS["reinforce_rej"] == ("reinforce_rej", "vanilla", 0.2)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_composes_and_validates(preset):
    estimator, loss, clip_high = PRESETS[preset]
    cfg = compose_preset(preset)
    actor = cfg.actor_rollout_ref.actor
    assert cfg.algorithm.adv_estimator == estimator
    assert actor.policy_loss.loss_mode == loss
    assert actor.clip_ratio_high == clip_high and actor.clip_ratio_low == 0.2
    assert actor.loss_agg_mode == "token-mean"
    assert actor.use_kl_loss is False and actor.kl_loss_type == "low_var_kl" and actor.kl_loss_coef == 0.001
    assert cfg.actor_rollout_ref.rollout.n == 4 and cfg.actor_rollout_ref.rollout.temperature == 1.0
    assert cfg.reward.custom_reward_function.path == "pkg://minimal_rl.reward"
    assert cfg.reward.custom_reward_function.name == "compute_score_async"
    assert dict(cfg.reward.custom_reward_function.reward_kwargs) == {"score_mapping": "signed", "report_unverified": True}
    adaptive = ALGORITHMS[preset].adaptive  # Reinforce-Ada: rounds in verl_ext's agent-loop worker
    assert dict(cfg.algorithm.minimal_rl) == {
        "positive_threshold": 0.0, "reward_mapping": "signed", "filter_mode": "drop" if HAS_DROP_SAMPLER else "zero",
        "nan_policy": "wrong", "sample_filter": None, **({"max_rounds": 4, "round_repeat": 8} if adaptive else {}),
    }
    manager = cfg.actor_rollout_ref.rollout.agent.get("agent_loop_manager_class")
    assert manager == ("verl_ext.adaptive_rollout.AdaptiveAgentLoopManager" if adaptive else None)
    if HAS_DROP_SAMPLER:
        # the drop happens in the replay-buffer sampler the preset selects (docs/verl-filtering.md)
        sampler = cfg.trainer.v1.sampler
        assert sampler.custom_sampler.path == "pkg://verl_ext.sampler"
        assert sampler.custom_sampler.name == "MinimalRLSampler"
        assert sampler.sampler_kwargs.algorithm == estimator and sampler.sampler_kwargs.minimal_rl.filter_mode == "drop"
    else:
        # no key verl < 0.9 would ignore: it has no v1 trainer, so the preset sets none of its keys
        assert "v1" not in cfg.trainer and cfg.actor_rollout_ref.actor.use_dynamic_bsz is False
    # every interpolation resolves (what `main_ppo --cfg job --resolve` and verl's TaskRunner do)
    OmegaConf.to_container(cfg, resolve=True)
    # verl's own checks, as main_ppo runs them before starting Ray
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert need_critic(cfg) is False
    actor_cfg = omega_conf_to_dataclass(actor)
    assert actor_cfg.policy_loss.loss_mode == loss
    # the estimator and loss named by the preset exist in verl's registries
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn

    get_adv_estimator_fn(estimator), get_policy_loss_fn(loss)
    if adaptive and adaptive_unsupported_reason(preset):  # an untested verl for the private worker API
        # by name: Hydra's plugin scan re-executes plugin modules, so the class objects may differ
        with pytest.raises(SystemExit, match=r"tested with verl >=0\.9\.1,<0\.10\.0") as refused:
            RegistrationCheck().on_run_start(cfg)
        assert type(refused.value).__name__ == RegistrationRefused.__name__
        return
    RegistrationCheck().on_run_start(cfg)  # registered here: no error


def test_reward_function_loads_through_verl():
    from verl.trainer.ppo.reward import get_custom_reward_fn

    import asyncio
    import inspect

    fn = get_custom_reward_fn(compose_preset("reinforce_rej"))
    assert inspect.iscoroutinefunction(fn)  # what verl's reward managers check before awaiting it
    right = asyncio.run(fn(data_source="math", solution_str="so \\boxed{4}", ground_truth="4", extra_info=None))
    wrong = asyncio.run(fn(data_source="math", solution_str="so \\boxed{5}", ground_truth="4", extra_info=None))
    assert right["score"] == 1.0 and wrong["score"] == -1.0 and right["unverified"] == 0


def test_composed_algorithm_block_reaches_the_estimator():
    """The algorithm.minimal_rl block survives composition and verl hands it to our estimator as
    ``config`` (main_ppo passes config.algorithm unchanged, in the legacy and the v1 trainer)."""
    cfg = compose_preset("reinforce_rej", "algorithm.minimal_rl.reward_mapping=raw")
    mask = torch.ones(4, 3)
    rewards = torch.zeros(4, 3)
    rewards[:, -1] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # 0/1 scores, one mixed group
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": np.array(["u"] * 4, dtype=object)},
    )
    out = compute_advantage(data, adv_estimator=cfg.algorithm.adv_estimator, config=cfg.algorithm)
    # raw 0/1 rewards: the fork's positives-only weights, so the option did arrive
    torch.testing.assert_close(out.batch["advantages"][:, 0], torch.tensor([1.0, 0.0, 0.0, 0.0]))


@needs_drop_sampler
def test_algo_config_dataclass_rejects_the_block():
    """Documented limitation: verl's AlgoConfig dataclass has no minimal_rl field, so converting
    config.algorithm with omega_conf_to_dataclass fails (verl 0.9.1's trainers never do this)."""
    cfg = compose_preset("reinforce_rej")
    with pytest.raises(Exception, match="minimal_rl"):
        omega_conf_to_dataclass(cfg.algorithm)


@needs_entry_points
def test_callback_refuses_when_plugins_are_disabled(monkeypatch):
    """`check` raises; the Hydra hooks turn it into a SystemExit (test_registration_callback.py)."""
    cfg = compose_preset("raft")
    for policy in ("none", "some_other_plugin"):
        monkeypatch.setenv("VERL_USE_EXTERNAL_PLUGINS", policy)
        # by name: Hydra's plugin scan re-executes plugin modules, so the class object may differ
        with pytest.raises(RuntimeError, match=r"pip install minimal-rl\[verl\]") as error:
            RegistrationCheck().check(cfg)
        assert type(error.value).__name__ == MinimalRLNotRegisteredError.__name__
    monkeypatch.setenv("VERL_USE_EXTERNAL_PLUGINS", "minimal_rl,other")
    RegistrationCheck().on_run_start(cfg)
    # the Ray workers' environment, when the config sets it
    cfg = compose_preset("raft", "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_PLUGINS=none")
    with pytest.raises(RuntimeError, match=r"ray_kwargs.ray_init.runtime_env.env_vars"):
        RegistrationCheck().check(cfg)


def test_bad_option_values_fail_before_the_run():
    cfg = compose_preset("reinforce_rej", "algorithm.minimal_rl.reward_mapping=bogus")
    with pytest.raises(ValueError, match="reward_mapping"):
        RegistrationCheck().check(cfg)
    from hydra_plugins.minimal_rl_searchpath.registration_check import check_overrides

    with pytest.raises(ValueError, match="unknown key"):
        check_overrides(["algorithm.adv_estimator=reinforce_rej", "+algorithm.minimal_rl.reward_maping=raw"])
    with pytest.raises(ValueError, match="filter_mode"):
        check_overrides(["+minimal_rl=raft", "algorithm.minimal_rl.filter_mode=bogus"])
    check_overrides(["+minimal_rl=raft", "algorithm.minimal_rl.positive_threshold=0.5"])


@needs_drop_sampler
def test_filter_only_preset_keeps_the_users_estimator_and_loss():
    """+minimal_rl=sample_filter installs the dropping sampler and nothing else."""
    cfg = compose_preset("sample_filter", "algorithm.adv_estimator=grpo", "algorithm.minimal_rl.sample_filter=drop_all_wrong")
    stock = compose_preset_free("algorithm.adv_estimator=grpo")
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.algorithm.minimal_rl.sample_filter == "drop_all_wrong"
    assert cfg.reward == stock.reward and cfg.actor_rollout_ref.actor.policy_loss == stock.actor_rollout_ref.actor.policy_loss
    # the only actor settings it touches are the two that make a dropped row free (remove-padding, dynamic bsz)
    changed = {k for k in stock.actor_rollout_ref.actor if cfg.actor_rollout_ref.actor[k] != stock.actor_rollout_ref.actor[k]}
    assert changed == {"use_dynamic_bsz"} and cfg.actor_rollout_ref.model.use_remove_padding is True
    assert cfg.trainer.v1.sampler.custom_sampler.name == "MinimalRLSampler"
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    RegistrationCheck().on_run_start(cfg)
    assert compose_preset("sample_filter", "algorithm.adv_estimator=rloo").algorithm.minimal_rl.sample_filter == "drop_uniform"


def test_a_filter_on_an_ungrouped_estimator_fails_before_the_run():
    cfg = compose_preset("sample_filter")  # verl's default estimator is gae
    assert cfg.algorithm.adv_estimator == "gae"
    with pytest.raises(ValueError, match="'gae' has none"):
        RegistrationCheck().check(cfg)
    with pytest.raises(SystemExit, match="'gae' has none"):  # what main_ppo gets: the run stops
        RegistrationCheck().on_run_start(cfg)
    from hydra_plugins.minimal_rl_searchpath.registration_check import check_overrides

    with pytest.raises(ValueError, match="'remax' has none"):
        check_overrides(["algorithm.adv_estimator=remax", "+minimal_rl=sample_filter",
                         "algorithm.minimal_rl.sample_filter=drop_uniform"])
    check_overrides(["algorithm.adv_estimator=gae", "+minimal_rl=sample_filter", "algorithm.minimal_rl.sample_filter=none"])


def compose_preset_free(*overrides: str):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        return compose("ppo_trainer", overrides=[*USER_OVERRIDES, *overrides])


def _main_ppo(*args: str, env_update: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    env.pop("VERL_USE_EXTERNAL_MODULES", None)  # set in this process by the Hydra plugin on verl < 0.9
    env.update(env_update or {})
    return subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_main_ppo_cfg_job_prints_our_estimator(tmp_path):
    proc = _main_ppo("+minimal_rl=reinforce_rej", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = yaml.safe_load(proc.stdout)
    assert job["algorithm"]["adv_estimator"] == "reinforce_rej"
    assert job["algorithm"]["minimal_rl"]["reward_mapping"] == "signed"
    assert job["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "vanilla"
    assert job["actor_rollout_ref"]["rollout"]["n"] == 4


@needs_entry_points
@pytest.mark.parametrize("args", [("algorithm.adv_estimator=reinforce_rej",), ("+minimal_rl=raft",)])
def test_main_ppo_fails_early_with_the_fix_when_plugins_are_off(args):
    """With verl's plugin loading off, main_ppo stops at config composition (no Ray, no model) with
    an error naming the package and the fix."""
    proc = _main_ppo(*args, "--cfg", "job", env_update={"VERL_USE_EXTERNAL_PLUGINS": "none"})
    assert proc.returncode != 0
    assert "MinimalRLNotRegisteredError" in proc.stderr
    assert "pip install minimal-rl[verl]" in proc.stderr and "VERL_USE_EXTERNAL_PLUGINS" in proc.stderr
    assert "ray init" not in proc.stdout


def test_failed_registration_is_logged_at_error_level():
    """verl logs a failing plugin at DEBUG; ours says so at ERROR, with the traceback."""
    code = (
        "import verl\n"
        "from verl.trainer.ppo.core_algos import register_adv_est\n"
        "register_adv_est('reinforce_rej')(lambda **kw: None)  # a clashing estimator\n"
        "try:\n    import verl_ext\nexcept ValueError:\n    pass\nelse:\n    raise SystemExit('no error')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VERL_USE_EXTERNAL_PLUGINS": "none"}
    env.pop("VERL_USE_EXTERNAL_MODULES", None)  # set in this process by the Hydra plugin on verl < 0.9
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR" in proc.stderr and "minimal-rl: registering the verl estimators" in proc.stderr
    assert "already been registered" in proc.stderr


@pytest.mark.slow
def test_built_wheel_ships_presets_plugin_and_entry_point(tmp_path):
    """The installed distribution (not the editable checkout) carries the presets, the Hydra plugin
    and the entry point: build the wheel from a copy of the sources, install it into a directory
    that shadows the checkout, and compose a preset through main_ppo from there."""
    import shutil
    import zipfile

    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for package in ("minimal_rl", "minimal_rl_app", "verl_ext", "trl_ext", "hydra_plugins"):
        if (root / package).exists():
            shutil.copytree(root / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("minimal_rl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"verl_ext/config/minimal_rl/{p}.yaml" for p in (*preset_names(), "_base", "_sampler")} <= names
    assert "verl_ext/config_v1/minimal_rl/sampler/drop.yaml" in names  # the sampler part (verl >= 0.9)
    assert not any(n.startswith(("tests/", "mrl_testing")) for n in names)  # test support never ships
    assert "hydra_plugins/minimal_rl_searchpath/searchpath.py" in names
    assert "hydra_plugins/__init__.py" not in names  # namespace package, shared with other plugins
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "[verl.plugins]\nminimal_rl = verl_ext" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = (
        "import sys, runpy\n"
        "import verl_ext, hydra_plugins.minimal_rl_searchpath as h\n"
        f"assert verl_ext.__file__.startswith({str(target)!r}), verl_ext.__file__\n"
        f"assert h.__file__.startswith({str(target)!r}), h.__file__\n"
        "sys.argv = ['main_ppo', '+minimal_rl=raft_pp_clip_higher', '--cfg', 'job']\n"
        "runpy.run_module('verl.trainer.main_ppo', run_name='__main__')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(target), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    proc = subprocess.run(  # cwd away from the checkout, so "" on sys.path does not find it
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = yaml.safe_load(proc.stdout)
    assert job["algorithm"]["adv_estimator"] == "raft"
    assert job["actor_rollout_ref"]["actor"]["clip_ratio_high"] == 0.28

