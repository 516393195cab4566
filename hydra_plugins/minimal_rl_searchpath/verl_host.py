"""What the installed verl offers minimal-rl, by version, read without importing verl (Hydra imports this
plugin for every Hydra application, so it stays light: standard library and ``packaging`` only).

=====================================  ==========  ==========  ==========
feature                                verl 0.7.1  verl 0.8.x  verl 0.9.x
=====================================  ==========  ==========  ==========
estimators + ``raft`` loss             yes         yes         yes
plugin loading by entry point          no          no          yes
plugin loading by VERL_USE_EXTERNAL_   yes         yes         yes
MODULES
dropping sampler (v1 trainer hook)     no          no          yes
refill, Reinforce-Ada (private API)    no          no          0.9.1+
=====================================  ==========  ==========  ==========

Before 0.9 verl imports plugins only from ``VERL_USE_EXTERNAL_MODULES`` (``verl/__init__.py``), in every
process that imports verl. `use_modules_variable` puts ``verl_ext`` there in the driver at config time (the
Hydra plugin's search-path hook, before ``main_ppo`` starts Ray): a Ray cluster the driver starts inherits
the driver's environment, so TaskRunner and every worker load the plugin. A Ray cluster started elsewhere
does not; then the one step is `RUNTIME_ENV_OVERRIDE` (verl passes ``ray_kwargs.ray_init.runtime_env`` to
``ray.init``, and Ray gives its ``env_vars`` to every worker of the job).
"""

from __future__ import annotations

import os
import sys

from packaging.version import Version

OLDEST_SUPPORTED = Version("0.7.1")  # estimators and losses (the registry API is the same from 0.7.0 on)
ENTRY_POINTS_SINCE = Version("0.9.0")  # verl loads the "verl.plugins" entry points at `import verl`
DROP_SAMPLER_SINCE = Version("0.9.0")  # verl.trainer.ppo.v1: the replay-buffer sampler hook
SUPPORTED_BELOW = Version("0.10.0")
# The experimental modules on private verl APIs (verl_ext/refill.py, verl_ext/adaptive_rollout.py) were written
# and tested against these releases (verl_ext/private_api.py refuses others).
PRIVATE_API_TESTED_MIN = Version("0.9.1")  # inclusive
PRIVATE_API_TESTED_BELOW = Version("0.10.0")  # exclusive

MODULE = "verl_ext"
MODULES_VARIABLE = "VERL_USE_EXTERNAL_MODULES"  # comma-separated modules verl imports (every version)
PLUGINS_VARIABLE = "VERL_USE_EXTERNAL_PLUGINS"  # entry-point policy (verl >= 0.9)
RUNTIME_ENV_OVERRIDE = f"+ray_kwargs.ray_init.runtime_env.env_vars.{MODULES_VARIABLE}={MODULE}"


def installed_verl() -> Version | None:
    """The verl version of this process (the imported module's, else the installed distribution's)."""
    module = sys.modules.get("verl")
    text = getattr(module, "__version__", None)
    if text is None:
        try:
            from importlib.metadata import version

            text = version("verl")
        except Exception:
            return None
    return Version(Version(str(text)).base_version)


def _version(version: Version | str | None) -> Version | None:
    if version is None:
        return installed_verl()
    return Version(Version(str(version)).base_version)


def loads_entry_points(version: Version | str | None = None) -> bool:
    v = _version(version)
    return v is None or v >= ENTRY_POINTS_SINCE


def has_drop_sampler(version: Version | str | None = None) -> bool:
    v = _version(version)
    return v is not None and v >= DROP_SAMPLER_SINCE


def lists_module(value: str | None) -> bool:
    return MODULE in {m.strip() for m in (value or "").split(",")}


def use_modules_variable(environ=os.environ) -> bool:
    """Add ``verl_ext`` to VERL_USE_EXTERNAL_MODULES in ``environ`` (kept: the modules already listed).
    Returns whether it changed anything."""
    current = environ.get(MODULES_VARIABLE, "")
    if lists_module(current):
        return False
    environ[MODULES_VARIABLE] = ",".join(m for m in (current.strip(), MODULE) if m)
    return True


def install_hint(version: Version | str | None = None) -> str:
    """The fix for a missing registration, as it works on ``version`` (default: the installed verl)."""
    v = _version(version)
    install = "install the verl extra (`pip install minimal-rl[verl]`) in the environment of the driver and of every Ray worker"
    if loads_entry_points(v):
        return (
            f"{install}, and leave {PLUGINS_VARIABLE} unset (or 'auto', or a list containing 'minimal_rl'): "
            "verl >= 0.9 loads the plugin through its entry point"
        )
    return (
        f"verl {v} loads plugins only through {MODULES_VARIABLE}: minimal-rl's Hydra plugin sets "
        f"{MODULES_VARIABLE}={MODULE} for the Ray cluster main_ppo starts; for a Ray cluster started elsewhere "
        f"(ray_kwargs.ray_init.address, RAY_ADDRESS) add `{RUNTIME_ENV_OVERRIDE}` (or export "
        f"{MODULES_VARIABLE}={MODULE} before `ray start`); and {install}"
    )


def unsupported_reason(version: Version | str | None = None) -> str | None:
    v = _version(version)
    if v is None or OLDEST_SUPPORTED <= v < SUPPORTED_BELOW:
        return None
    return f"minimal-rl supports verl >={OLDEST_SUPPORTED},<{SUPPORTED_BELOW}; verl {v} is installed"


def private_api_tested(version: Version | str | None = None) -> bool:
    """Whether ``version`` (default: the installed verl) is in the range the private-API modules were tested with."""
    v = _version(version)
    return v is not None and PRIVATE_API_TESTED_MIN <= v < PRIVATE_API_TESTED_BELOW


def adaptive_unsupported_reason(estimator: str | None, version: Version | str | None = None) -> str | None:
    """Why ``estimator`` cannot run on ``version`` (default: the installed verl) when it samples adaptively
    (Reinforce-Ada: `verl_ext.adaptive_rollout`, private API), else None."""
    from minimal_rl.table import ALGORITHMS  # standard library only

    spec = ALGORITHMS.get(str(estimator).lower())
    if spec is None or not spec.adaptive:
        return None
    if private_api_tested(version):
        return None
    v = _version(version)
    return (
        f"{spec.name} ({spec.paper}) samples in rounds inside verl's agent-loop worker, through private verl APIs "
        f"tested with verl >={PRIVATE_API_TESTED_MIN},<{PRIVATE_API_TESTED_BELOW}; verl {v} is installed. Install a "
        "tested verl, or use reinforce_rej (uniform groups dropped) on this one"
    )
