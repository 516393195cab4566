"""Fail early, with the fix for the installed verl, when a verl run names a minimal-rl estimator or loss
that verl does not have registered (plugin disabled by VERL_USE_EXTERNAL_PLUGINS, the plugin failing to import,
or the package not installed where the driver runs). Without this, verl only fails after Ray start-up and
model loading, with "Unknown advantage estimator". On verl < 0.9, which has no plugin entry points,
`load_plugin_in_driver` is also how the plugin gets loaded at all (`verl_host`). And it says once, at config
time, when rejected samples cannot be dropped (`filter_notice`).

Two hooks call `check_registered` (and then `check_options`, so a bad ``algorithm.minimal_rl`` value
also fails before any rollout):
- the SearchPathPlugin, on the command-line overrides, at config composition in the driver;
- `RegistrationCheck`, a Hydra callback every preset installs, on the composed config (``on_run_start``
  runs before verl's ``main``). Hydra turns an exception raised by a callback into a warning and goes
  on, so the callback stops the run with `RegistrationRefused` (a SystemExit, which Hydra lets through).

Light on purpose (Hydra imports it for every Hydra application): no torch, no verl import; the names come
from `minimal_rl.table`, which imports only the standard library.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any, Iterable

from hydra.experimental.callback import Callback

# From the core's dependency-free table (no torch, no verl). Not from verl_ext: importing that would register
# the estimators in this process and hide the problem.
from minimal_rl.table import ESTIMATOR_NAMES, LOSS_NAMES, check_host_sampling, estimator_of_preset

from .filter_notice import notice_for_config, notice_for_overrides
from .verl_host import (
    MODULE,
    adaptive_unsupported_reason,
    MODULES_VARIABLE,
    PLUGINS_VARIABLE,
    RUNTIME_ENV_OVERRIDE,
    install_hint,
    installed_verl,
    lists_module,
    loads_entry_points,
    unsupported_reason,
    use_modules_variable,
)

logger = logging.getLogger("minimal_rl")
ENTRY_POINT = "minimal_rl"  # name in the verl.plugins entry-point group


class MinimalRLNotRegisteredError(RuntimeError):
    """A minimal-rl name is used but verl has not loaded the minimal-rl plugin."""


class RegistrationRefused(SystemExit):
    """`RegistrationCheck` refusing a run: exit status 1 with the check's message (the original error is
    the ``__cause__``). A SystemExit because Hydra 1.3 (``hydra/_internal/callbacks.py``) catches every
    ``Exception`` a callback raises, warns ``Callback ... raised ...`` and runs the job anyway."""


def _plugin_policy_excludes_us(policy: str | None, where: str) -> str | None:
    policy = (policy or "auto").strip().lower()
    if policy == "auto":
        return None
    if policy == "none":
        return f"{PLUGINS_VARIABLE}=none {where} disables verl's plugin loading"
    allowed = {p.strip() for p in policy.split(",") if p.strip()}
    if ENTRY_POINT not in allowed:
        return f"{PLUGINS_VARIABLE}={policy!r} {where} does not list {ENTRY_POINT!r}"
    return None


def plugin_import_error() -> str | None:
    """Why ``import verl_ext`` fails in this process (``"ModuleNotFoundError: ..."``), or None when it imports.
    verl 0.9 logs a failing plugin at DEBUG only, and verl < 0.9 raises it inside ``import verl``: this is how
    the check names the underlying error on every version. Only called once a registration is known missing."""
    try:
        importlib.import_module(MODULE)
    except Exception as error:  # any failure of the plugin's import is the answer
        return f"{type(error).__name__}: {error}"
    return None


def load_plugin_in_driver() -> str | None:
    """verl < 0.9 (no entry points): import verl_ext in this (driver) process and, once it imports, add it to
    VERL_USE_EXTERNAL_MODULES so the Ray cluster main_ppo starts loads it in TaskRunner and every worker
    (`verl_host`). A failure is logged at ERROR with its traceback and returned; the variable is then left
    alone (verl would re-raise the error inside ``import verl`` in every worker, even of a run that uses no
    minimal-rl name). No-op on verl >= 0.9 or outside a verl process."""
    if "verl" not in sys.modules or loads_entry_points():
        return None
    try:
        importlib.import_module(MODULE)
    except Exception as error:
        logger.error("minimal-rl: importing the verl plugin (%s) failed; %s", MODULE, install_hint(), exc_info=True)
        return f"{type(error).__name__}: {error}"
    use_modules_variable()
    return None


def check_registered(
    estimator: str | None,
    loss_mode: str | None = None,
    worker_policy: str | None = None,
    worker_modules: str | None = None,
) -> None:
    """Raise `MinimalRLNotRegisteredError` if ``estimator`` / ``loss_mode`` is one of ours and verl (as
    imported in this process) lacks it, or the installed verl would not load the plugin in its workers.

    ``worker_policy`` / ``worker_modules``: VERL_USE_EXTERNAL_PLUGINS / VERL_USE_EXTERNAL_MODULES as set in
    Ray's runtime_env (``ray_kwargs.ray_init.runtime_env.env_vars``), if any."""
    wanted = []
    if estimator is not None and str(estimator).lower() in ESTIMATOR_NAMES:
        wanted.append(("advantage estimator", str(estimator).lower(), "ADV_ESTIMATOR_REGISTRY"))
    if loss_mode is not None and str(loss_mode) in LOSS_NAMES:
        wanted.append(("policy loss", str(loss_mode), "POLICY_LOSS_REGISTRY"))
    if not wanted:
        return
    version = installed_verl()
    reason = unsupported_reason(version)
    if reason is None and loads_entry_points(version):
        reason = _plugin_policy_excludes_us(os.getenv(PLUGINS_VARIABLE), "(in this environment)")
        if reason is None and worker_policy is not None:
            reason = _plugin_policy_excludes_us(str(worker_policy), "(in ray_kwargs.ray_init.runtime_env.env_vars)")
    core_algos = sys.modules.get("verl.trainer.ppo.core_algos")
    if reason is None and core_algos is None and "verl" in sys.modules:
        # a working plugin has imported it already; without it (the plugin failed) nothing has yet
        try:
            core_algos = importlib.import_module("verl.trainer.ppo.core_algos")
        except Exception:  # verl itself broken: verl will say so
            core_algos = None
    if reason is None and core_algos is not None:
        missing = [w for w in wanted if w[1] not in getattr(core_algos, w[2], {})]
        if missing:
            error = plugin_import_error()
            reason = (
                "the minimal-rl verl plugin did not register "
                + ", ".join(f"{kind} {name!r}" for kind, name, _ in missing)
                + (f" (importing {MODULE} fails: {error})" if error else
                   f" ({MODULE} imports, but verl {version} did not load it: is the minimal-rl distribution "
                   "installed in this environment, not only on the path?)")
            )
    if reason is None and not loads_entry_points(version):
        if not (lists_module(os.getenv(MODULES_VARIABLE)) or lists_module(worker_modules)):
            reason = f"{MODULES_VARIABLE} does not list {MODULE!r}, so verl {version}'s Ray workers would not load it"
    if reason is None:
        return
    kind, name, _ = wanted[0]
    raise MinimalRLNotRegisteredError(f"{kind} {name!r} comes from the minimal-rl package, but {reason}. Fix: {install_hint(version)}.")


def check_options(block: Any, estimator: str | None = None) -> None:
    """Validate an ``algorithm.minimal_rl`` block (and, given the estimator, that its sample filter applies to it)
    now instead of at the first advantage computation (after rollouts). Only called once `check_registered`
    passed, so importing verl_ext is safe."""
    if not block:
        return
    from verl_ext.options import options_from_block, sample_filter_in_effect

    options = options_from_block(block)
    if estimator is not None:
        sample_filter_in_effect(estimator, options)


def _override_values(overrides: Iterable[str]) -> dict[str, str]:
    values = {}
    for item in overrides:
        if "=" not in item or item.startswith("-"):
            continue
        key, value = item.split("=", 1)
        values[key.lstrip("+~")] = value.strip().strip("'\"")
    return values


def check_overrides(overrides: Iterable[str]) -> None:
    """`check_registered` on Hydra command-line overrides (``algorithm.adv_estimator=...``,
    ``+minimal_rl=<preset>``, ``...policy_loss.loss_mode=raft``), then the literal command's zero-mode notice.
    Outside a verl run: no-op."""
    if "verl" not in sys.modules:
        return
    values = _override_values(overrides)
    estimator = values.get("algorithm.adv_estimator")
    preset = values.get("minimal_rl")
    if estimator is None and preset:
        estimator = estimator_of_preset(preset)
    if estimator is not None:
        check_host_sampling(estimator, "verl_ext")  # before Hydra looks for a preset verl_ext cannot ship
        reason = adaptive_unsupported_reason(estimator)
        if reason:
            raise ValueError(reason)
    env_prefix = "ray_kwargs.ray_init.runtime_env.env_vars."
    check_registered(
        estimator, values.get("actor_rollout_ref.actor.policy_loss.loss_mode"),
        values.get(env_prefix + PLUGINS_VARIABLE), values.get(env_prefix + MODULES_VARIABLE),
    )
    prefix = "algorithm.minimal_rl."
    block = {k[len(prefix):]: (None if v in ("null", "None") else v) for k, v in values.items() if k.startswith(prefix)}
    check_options(block, estimator)
    notice = notice_for_overrides(values)
    if notice:
        logger.warning(notice)


class RegistrationCheck(Callback):
    """Hydra callback (``hydra.callbacks.minimal_rl_registration_check``) set by every preset.

    A subclass of Hydra's `Callback`: Hydra calls every hook (``on_job_start``, ``on_job_end``,
    ``on_run_end``, ...) on every callback and warns ``Callback ... raised AttributeError`` for each one a
    class lacks; the base class gives the hooks we do not use as no-ops. `check` raises the check's error;
    the hooks turn it into `RegistrationRefused`, so the run really stops (see that class)."""

    def check(self, config: Any) -> None:
        """Raise `MinimalRLNotRegisteredError`, or ValueError / TypeError for a bad ``algorithm.minimal_rl`` block."""
        if "verl" not in sys.modules:
            return
        algorithm = config.get("algorithm") or {}
        actor = (config.get("actor_rollout_ref") or {}).get("actor") or {}
        loss_mode = (actor.get("policy_loss") or {}).get("loss_mode")
        ray_init = (config.get("ray_kwargs") or {}).get("ray_init") or {}
        ray_env = (ray_init.get("runtime_env") or {}).get("env_vars") or {}
        check_registered(
            algorithm.get("adv_estimator"), loss_mode, ray_env.get(PLUGINS_VARIABLE), ray_env.get(MODULES_VARIABLE)
        )
        check_options(algorithm.get("minimal_rl"), algorithm.get("adv_estimator"))
        reason = adaptive_unsupported_reason(algorithm.get("adv_estimator"))
        if reason:
            raise ValueError(reason)
        if loads_entry_points():  # verl >= 0.9: the adaptive rollout's settings (needs verl_ext's v1 modules)
            from verl_ext.adaptive import check_adaptive_config

            check_adaptive_config(config)
        self._warn_external_cluster(ray_init, ray_env)
        notice = notice_for_config(config)
        if notice:
            logger.warning(notice)

    @staticmethod
    def _warn_external_cluster(ray_init: Any, ray_env: Any) -> None:
        """verl < 0.9 and a Ray cluster started elsewhere: the driver's VERL_USE_EXTERNAL_MODULES does not reach
        its workers (they may have it from their own environment; we cannot tell, so this warns)."""
        address = ray_init.get("address") or os.getenv("RAY_ADDRESS")
        if address and not loads_entry_points() and not lists_module(ray_env.get(MODULES_VARIABLE)):
            logger.warning(
                "minimal-rl: verl %s loads plugins only through %s, and this run joins the Ray cluster at %s, whose "
                "workers do not inherit the driver's environment: unless they have %s=%s already, add %s",
                installed_verl(), MODULES_VARIABLE, address, MODULES_VARIABLE, MODULE, RUNTIME_ENV_OVERRIDE,
            )

    def _refuse_on_failure(self, config: Any) -> None:
        try:
            self.check(config)
        except (MinimalRLNotRegisteredError, ValueError, TypeError) as error:
            raise RegistrationRefused(f"minimal-rl: {type(error).__name__}: {error}") from error

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._refuse_on_failure(config)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._refuse_on_failure(config)
