"""The presets' Hydra callback `RegistrationCheck`, run by Hydra itself (a Hydra app on verl's own
``ppo_trainer`` config, as ``main_ppo`` composes it, minus Ray): no warning on a good run, and a run it
refuses really stops (Hydra turns a callback's exception into a warning and runs the job anyway)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mrl_verl import needs_entry_points
from omegaconf import OmegaConf

from hydra_plugins.minimal_rl_searchpath.registration_check import (
    MinimalRLNotRegisteredError,
    RegistrationCheck,
    RegistrationRefused,
)

TASK_MARKER = "TASK FUNCTION RAN"
# What Hydra 1.3 prints for a callback hook that raises (hydra/_internal/callbacks.py).
HYDRA_CALLBACK_WARNING = "Callback RegistrationCheck."

APP = textwrap.dedent(
    f"""
    import hydra
    import verl  # like main_ppo: verl (and through its entry point, our plugin) is imported first

    @hydra.main(config_path=None, config_name=None, version_base=None)
    def main(config):
        print({TASK_MARKER!r}, config.algorithm.adv_estimator)

    main()
    """
)


def _user_config(tmp_path: Path, body: str = "") -> Path:
    """A user's own run config on top of verl's ppo_trainer with a preset in its defaults list: the
    estimator is not on the command line, so only the callback (not the SearchPathPlugin) can check it."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "my_run.yaml").write_text(
        "defaults:\n  - ppo_trainer\n  - minimal_rl: reinforce_rej\n  - _self_\n"
        "hydra:\n  searchpath:\n    - pkg://verl.trainer.config\n" + textwrap.dedent(body)
    )
    return conf


def _run_app(tmp_path: Path, conf: Path, *overrides: str, env_update: dict | None = None):
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    env.pop("VERL_USE_EXTERNAL_MODULES", None)  # set in this process by the Hydra plugin on verl < 0.9
    env.update(env_update or {})
    cmd = [sys.executable, str(app), "--config-path", str(conf), "--config-name", "my_run",
           f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_callback_is_a_hydra_callback():
    from hydra.experimental.callback import Callback

    assert issubclass(RegistrationCheck, Callback)
    for hook in ("on_run_start", "on_run_end", "on_multirun_start", "on_multirun_end", "on_job_start", "on_job_end"):
        assert callable(getattr(RegistrationCheck(), hook))


@needs_entry_points
def test_hooks_refuse_with_system_exit(monkeypatch):
    """Direct calls: `check` raises the error, the hooks raise RegistrationRefused (exit status 1)."""
    import verl  # noqa: F401  (the check only applies inside a verl process)

    monkeypatch.setenv("VERL_USE_EXTERNAL_PLUGINS", "none")
    cfg = OmegaConf.create({"algorithm": {"adv_estimator": "raft"}})
    # by name: Hydra's plugin scan re-executes plugin modules, so the class objects may differ
    with pytest.raises(RuntimeError) as error:
        RegistrationCheck().check(cfg)
    assert type(error.value).__name__ == MinimalRLNotRegisteredError.__name__
    for hook in ("on_run_start", "on_multirun_start"):
        with pytest.raises(SystemExit) as refused:
            getattr(RegistrationCheck(), hook)(cfg, config_name="my_run")
        assert type(refused.value).__name__ == RegistrationRefused.__name__
        assert not isinstance(refused.value, Exception)  # what Hydra's callback runner does not catch
        assert "pip install minimal-rl[verl]" in str(refused.value.code)
        assert type(refused.value.__cause__).__name__ == "MinimalRLNotRegisteredError"


def test_hydra_run_with_a_preset_has_no_callback_warning(tmp_path):
    proc = _run_app(tmp_path, _user_config(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{TASK_MARKER} reinforce_rej" in proc.stdout
    assert HYDRA_CALLBACK_WARNING not in proc.stderr + proc.stdout


@needs_entry_points
def test_hydra_run_refused_by_the_callback_stops(tmp_path):
    """Plugins off and the estimator only in the config file: the callback must stop the job (before
    the fix Hydra printed a warning and ran it)."""
    proc = _run_app(tmp_path, _user_config(tmp_path), env_update={"VERL_USE_EXTERNAL_PLUGINS": "none"})
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert TASK_MARKER not in proc.stdout
    assert "minimal-rl: MinimalRLNotRegisteredError" in proc.stderr
    assert "pip install minimal-rl[verl]" in proc.stderr
    assert HYDRA_CALLBACK_WARNING not in proc.stderr


def test_hydra_run_with_a_bad_option_in_the_config_file_stops(tmp_path):
    conf = _user_config(tmp_path, "algorithm:\n  minimal_rl:\n    reward_mapping: bogus\n")
    proc = _run_app(tmp_path, conf)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert TASK_MARKER not in proc.stdout
    assert "minimal-rl: ValueError" in proc.stderr and "reward_mapping" in proc.stderr
