"""Fail early, with the fix, when a verl run names a minimal-rl estimator or loss that verl does not
have registered (plugin disabled by VERL_USE_EXTERNAL_PLUGINS, or the package not installed where
the driver runs). Without this, verl only fails after Ray start-up and model loading, with
"Unknown advantage estimator".

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

import os
import sys
from typing import Any, Iterable

from hydra.experimental.callback import Callback

# From the core's dependency-free table (no torch, no verl). Not from verl_ext: importing that would register
# the estimators in this process and hide the problem.
from minimal_rl.table import ESTIMATOR_NAMES, LOSS_NAMES, check_host_sampling, estimator_of_preset

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
        return f"VERL_USE_EXTERNAL_PLUGINS=none {where} disables verl's plugin loading"
    allowed = {p.strip() for p in policy.split(",") if p.strip()}
    if ENTRY_POINT not in allowed:
        return f"VERL_USE_EXTERNAL_PLUGINS={policy!r} {where} does not list {ENTRY_POINT!r}"
    return None


def check_registered(estimator: str | None, loss_mode: str | None = None, worker_policy: str | None = None) -> None:
    """Raise `MinimalRLNotRegisteredError` if ``estimator`` / ``loss_mode`` is one of ours and verl (as
    imported in this process) lacks it, or the plugin policy would keep it from verl's workers
    (``worker_policy``: VERL_USE_EXTERNAL_PLUGINS as set in Ray's runtime_env, if any)."""
    wanted = []
    if estimator is not None and str(estimator).lower() in ESTIMATOR_NAMES:
        wanted.append(("advantage estimator", str(estimator).lower(), "ADV_ESTIMATOR_REGISTRY"))
    if loss_mode is not None and str(loss_mode) in LOSS_NAMES:
        wanted.append(("policy loss", str(loss_mode), "POLICY_LOSS_REGISTRY"))
    if not wanted:
        return
    reason = _plugin_policy_excludes_us(os.getenv("VERL_USE_EXTERNAL_PLUGINS"), "(in this environment)")
    if reason is None and worker_policy is not None:
        reason = _plugin_policy_excludes_us(str(worker_policy), "(in ray_kwargs.ray_init.runtime_env.env_vars)")
    core_algos = sys.modules.get("verl.trainer.ppo.core_algos")
    if reason is None and core_algos is not None:
        missing = [w for w in wanted if w[1] not in getattr(core_algos, w[2], {})]
        if missing:
            reason = (
                "the minimal-rl verl plugin did not register "
                + ", ".join(f"{kind} {name!r}" for kind, name, _ in missing)
                + " (see the ERROR logged by verl_ext above, if any)"
            )
    if reason is None:
        return
    kind, name, _ = wanted[0]
    raise MinimalRLNotRegisteredError(
        f"{kind} {name!r} comes from the minimal-rl package, but {reason}. Fix: `pip install "
        "minimal-rl[verl]` in the environment of the driver and of every Ray worker, and leave "
        f"VERL_USE_EXTERNAL_PLUGINS unset (or 'auto', or a list containing {ENTRY_POINT!r})."
    )


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
    ``+minimal_rl=<preset>``, ``...policy_loss.loss_mode=raft``). Outside a verl run: no-op."""
    if "verl" not in sys.modules:
        return
    values = _override_values(overrides)
    estimator = values.get("algorithm.adv_estimator")
    preset = values.get("minimal_rl")
    if estimator is None and preset:
        estimator = estimator_of_preset(preset)
    if estimator is not None:
        check_host_sampling(estimator, "verl_ext")  # before Hydra looks for a preset verl_ext cannot ship
    check_registered(estimator, values.get("actor_rollout_ref.actor.policy_loss.loss_mode"))
    prefix = "algorithm.minimal_rl."
    block = {k[len(prefix):]: (None if v in ("null", "None") else v) for k, v in values.items() if k.startswith(prefix)}
    check_options(block, estimator)


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
        ray_env = (((config.get("ray_kwargs") or {}).get("ray_init") or {}).get("runtime_env") or {}).get("env_vars")
        worker_policy = (ray_env or {}).get("VERL_USE_EXTERNAL_PLUGINS")
        check_registered(algorithm.get("adv_estimator"), loss_mode, worker_policy)
        check_options(algorithm.get("minimal_rl"), algorithm.get("adv_estimator"))

    def _refuse_on_failure(self, config: Any) -> None:
        try:
            self.check(config)
        except (MinimalRLNotRegisteredError, ValueError, TypeError) as error:
            raise RegistrationRefused(f"minimal-rl: {type(error).__name__}: {error}") from error

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._refuse_on_failure(config)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._refuse_on_failure(config)
