"""Every preset's composed config (what it changes in verl's own), compared with a stored copy
(``preset_golden/<preset>.txt``).

The presets are short files composed through Hydra ``defaults:``; a refactor of them must not change
what a run gets. An intended change regenerates the copies, so the diff shows up in review::

    MINIMAL_RL_UPDATE_GOLDEN=1 python -m pytest tests/verl_ext/test_preset_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import verl
from hydra import compose, initialize_config_dir
from mrl_verl import needs_drop_sampler
from omegaconf import OmegaConf

# The stored copies are verl 0.9's composition (with the sampler); older verl compose without it
# (test_verl_presets.py checks that).
pytestmark = needs_drop_sampler

VERL_CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")
PRESET_DIR = Path(__file__).resolve().parents[2] / "verl_ext" / "config" / "minimal_rl"
GOLDEN_DIR = Path(__file__).with_name("preset_golden")
UPDATE = os.environ.get("MINIMAL_RL_UPDATE_GOLDEN") == "1"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def _flatten(node, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out or {prefix[:-1]: "{}"}
    return {prefix[:-1]: repr(node)}


def _compose(overrides: list[str]) -> dict[str, str]:
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        cfg = compose("ppo_trainer", overrides=overrides, return_hydra_config=True)
    job = OmegaConf.to_container(cfg, resolve=False)
    callbacks = job.pop("hydra").get("callbacks") or {}
    return {**_flatten(job), **_flatten({"hydra": {"callbacks": callbacks}})}


def composed_job_config(preset: str) -> str:
    """What ``main_ppo +minimal_rl=<preset> --cfg job`` changes in verl's own config (and the Hydra
    callbacks it adds), one ``key: value`` line per changed or added key, unresolved."""
    stock, with_preset = _compose([]), _compose([f"+minimal_rl={preset}"])
    lines = [f"{key}: {value}" for key, value in sorted(with_preset.items()) if stock.get(key) != value]
    # an empty mapping that the preset filled is not a removal
    removed = [k for k in set(stock) - set(with_preset) if not any(w.startswith(k + ".") for w in with_preset)]
    lines += [f"{key}: <removed>" for key in sorted(removed)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("preset", preset_names())
def test_composed_preset_matches_the_stored_copy(preset):
    text = composed_job_config(preset)
    golden = GOLDEN_DIR / f"{preset}.txt"
    if UPDATE:
        golden.write_text(text)
    assert golden.exists(), f"no stored copy for preset {preset!r}: run with MINIMAL_RL_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"composed config of {preset!r} changed (see the module docstring)"


def test_every_stored_copy_has_a_preset():
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.txt")) == preset_names()
