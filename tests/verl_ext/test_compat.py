"""verl 0.9.1 + TRL 1.16 in one environment (`verl_ext.compat`): verl's own monkey patch, which every
actor build runs, works on a tiny model with our plugin loaded, and fails without it (the defect).

Subprocesses: the fix lives on ``sys.meta_path`` and in ``sys.modules``, which this test process shares
with every other test."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mrl_verl import needs_verl

# The defect is verl 0.9.1's (it imports TRL's removed value-head class); older verl is not this combination.
pytestmark = needs_verl("0.9.1", "verl 0.9.1's import of TRL's removed value-head class, with TRL 1.16")

COMPAT_PATH = Path(__file__).resolve().parents[2] / "verl_ext" / "compat.py"

# verl's own function on a tiny Llama (hidden 32), twice: one WARNING per process, not per call.
MONKEY_PATCH = textwrap.dedent(
    """
    import verl  # loads our plugin through the verl.plugins entry point (unless disabled)
    from transformers import LlamaConfig, LlamaForCausalLM
    from verl.models.transformers.monkey_patch import apply_monkey_patch

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    for _ in range(2):
        apply_monkey_patch(LlamaForCausalLM(config), use_remove_padding=False)
    from trl.experimental.ppo import AutoModelForCausalLMWithValueHead as cls
    print("STATE_DICT_PATCHED", cls.state_dict.__qualname__)
    try:
        cls.from_pretrained("anything")
    except ImportError as error:
        print("FROM_PRETRAINED_REFUSED", type(error).__name__, error)
    """
)


def _python(code: str, env_update: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TRL_EXPERIMENTAL_SILENCE": "1"}
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    env.update(env_update or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, **kwargs)


def _trl_has_value_head() -> bool:
    code = (
        "import importlib.util as u, trl\n"
        "ok = u.find_spec('trl.experimental.ppo') is not None or hasattr(trl, 'AutoModelForCausalLMWithValueHead')\n"
        "print(ok)"
    )
    return _python(code).stdout.strip().endswith("True")


def test_environment_has_the_combination():
    """The [all] environment the suite runs in is the broken combination this fix is for."""
    assert importlib.metadata.version("verl").startswith("0.9.")
    assert importlib.metadata.version("trl").startswith("1.16.")


def test_verl_monkey_patch_runs_with_trl_1_16():
    proc = _python(MONKEY_PATCH)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STATE_DICT_PATCHED apply_monkey_patch.<locals>.state_dict" in proc.stdout
    assert "FROM_PRETRAINED_REFUSED ValueHeadUnavailableError" in proc.stdout
    assert "value-head critic fallback needs" in proc.stdout
    assert proc.stderr.count("has no `trl.experimental.ppo.AutoModelForCausalLMWithValueHead`") == 1, proc.stderr


@pytest.mark.skipif("_trl_has_value_head()", reason="this TRL still has the class: nothing to fix")
def test_without_our_plugin_verl_cannot_build_a_model():
    """The defect itself: the same code with verl's plugin loading off (so no verl_ext) fails."""
    proc = _python(MONKEY_PATCH, env_update={"VERL_USE_EXTERNAL_PLUGINS": "none"})
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "AutoModelForCausalLMWithValueHead" in proc.stderr


def _load_compat_by_path() -> str:
    """Code that loads verl_ext/compat.py alone (not the verl_ext package, which imports verl)."""
    return (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('compat', {str(COMPAT_PATH)!r})\n"
        "compat = importlib.util.module_from_spec(spec); spec.loader.exec_module(compat)\n"
        "compat.install(); compat.install()\n"
    )


def test_a_trl_that_has_the_module_is_used_as_is(tmp_path):
    fake = tmp_path / "trl" / "experimental"
    fake.mkdir(parents=True)
    (tmp_path / "trl" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "ppo.py").write_text("class AutoModelForCausalLMWithValueHead:\n    REAL = True\n")
    code = _load_compat_by_path() + textwrap.dedent(
        """
        finders = [f for f in sys.meta_path if type(f).__name__ == 'TrlValueHeadFinder']
        assert len(finders) == 1 and sys.meta_path[-1] is finders[0], sys.meta_path
        from trl.experimental.ppo import AutoModelForCausalLMWithValueHead as cls
        assert cls.REAL and not compat.is_placeholder(cls)
        assert finders[0].find_spec('trl.experimental.other') is None
        assert finders[0].find_spec('trl') is None
        print('REAL MODULE USED')
        """
    )
    proc = _python(code, env_update={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REAL MODULE USED" in proc.stdout and "minimal-rl" not in proc.stderr


def test_without_trl_nothing_is_provided(tmp_path):
    """No TRL at all: the parent import fails as before (verl checks is_trl_available first anyway)."""
    code = _load_compat_by_path() + textwrap.dedent(
        """
        sys.modules['trl'] = None  # as if TRL were not installed
        try:
            import trl.experimental.ppo
        except ImportError:
            print('NO TRL, NO MODULE')
        """
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO TRL, NO MODULE" in proc.stdout


def test_import_verl_ext_does_not_import_trl():
    proc = _python("import verl, sys; import verl_ext; print('trl' in sys.modules)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
