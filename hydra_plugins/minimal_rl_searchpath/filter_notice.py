"""Says once, at config time, when the samples a minimal-rl sample filter rejects cannot be dropped.

Dropping happens in minimal-rl's replay-buffer sampler (`verl_ext.sampler`), which only verl >= 0.9's v1 trainer
builds, and only when ``trainer.v1.sampler.custom_sampler`` names it (the presets do). Anywhere else the
estimators still give rejected samples weight 0 ("zero" mode: the paper's fork), and the run says so here,
once, before any rollout, with the setting that turns dropping on:

- the mission's literal command (``algorithm.adv_estimator=reinforce_rej``, no preset): `notice_for_overrides`,
  from the search-path hook (it sees only the command line, hence "unless the sampler is configured");
- a preset's run (the `RegistrationCheck` callback, with the composed config): `notice_for_config`.

Light (standard library and `minimal_rl.table` only), like the rest of this Hydra plugin.
"""

from __future__ import annotations

from typing import Any, Mapping

from minimal_rl.table import ALGORITHMS, ESTIMATOR_NAMES, FILTER_ONLY_PRESET, SAMPLE_FILTERS

from .verl_host import DROP_SAMPLER_SINCE, has_drop_sampler, installed_verl

ZERO_MODE = "filters in zero mode"  # in every notice (tests and the e2e harness look for it)
SAMPLER_PATH = "pkg://verl_ext.sampler"
SAMPLER_NAME = "MinimalRLSampler"
FILTER_ONLY_PRESET_FILTER = "drop_uniform"  # verl_ext/config/minimal_rl/sample_filter.yaml (a test compares)


def drop_override(sample_filter: str) -> str:
    """The command-line setting that turns dropping on for a minimal-rl estimator with ``sample_filter``."""
    override = f"+minimal_rl={FILTER_ONLY_PRESET}"
    if sample_filter != FILTER_ONLY_PRESET_FILTER:
        override += f" algorithm.minimal_rl.sample_filter={sample_filter}"
    return override


def _filter_in_effect(estimator: str | None, sample_filter: Any) -> str | None:
    if sample_filter not in (None, "", "null", "None"):
        name = str(sample_filter).lower()
        return name if name in SAMPLE_FILTERS else None  # a bad name fails in check_options, not here
    spec = ALGORITHMS.get(str(estimator).lower()) if estimator else None
    return spec.sample_filter if spec is not None and spec.family != "grpo" else None


def zero_mode_notice(subject: str, sample_filter: str, consequence: str, condition: str = "") -> str:
    return (
        f"minimal-rl: {subject} {ZERO_MODE}{condition}: sample filter {sample_filter!r} (drops "
        f"{SAMPLE_FILTERS[sample_filter].drops}) gives the samples it rejects weight 0, and they stay in the batch "
        f"(they still cost old-log-prob, reference and forward/backward compute and count in the token-mean "
        f"denominator). {consequence}"
    )


def notice_for_overrides(values: Mapping[str, str], version=None) -> str | None:
    """The literal command: a minimal-rl estimator on the command line without a preset."""
    estimator = str(values.get("algorithm.adv_estimator", "")).lower()
    if estimator not in ESTIMATOR_NAMES or values.get("minimal_rl"):  # with a preset the callback speaks
        return None
    if str(values.get("algorithm.minimal_rl.filter_mode", "")).lower() == "zero" and has_drop_sampler(version):
        return None  # asked for
    if values.get("trainer.v1.sampler.custom_sampler.name") == SAMPLER_NAME and has_drop_sampler(version):
        return None
    sample_filter = _filter_in_effect(estimator, values.get("algorithm.minimal_rl.sample_filter"))
    if sample_filter is None or sample_filter == "none":
        return None
    subject = f"algorithm.adv_estimator={estimator}"
    if has_drop_sampler(version):
        return zero_mode_notice(
            subject, sample_filter, f"To drop them instead, add: {drop_override(sample_filter)}",
            condition=" unless the minimal-rl sampler is configured",
        )
    return zero_mode_notice(subject, sample_filter, _needs_new_verl(version))


def _needs_new_verl(version) -> str:
    v = version or installed_verl()
    return f"Dropping them needs verl >= {DROP_SAMPLER_SINCE} (the v1 trainer's replay-buffer sampler); verl {v} is installed."


def notice_for_config(config: Any, version=None) -> str | None:
    """A composed config (a preset's run): the filter can reject samples, but no minimal-rl sampler will run."""
    algorithm = config.get("algorithm") or {}
    block = algorithm.get("minimal_rl") or {}
    estimator = algorithm.get("adv_estimator")
    sample_filter = _filter_in_effect(estimator, block.get("sample_filter"))
    if sample_filter is None or sample_filter == "none":
        return None
    mode = str(block.get("filter_mode") or "drop").lower()
    subject = f"this run (algorithm.adv_estimator={estimator}, filter_mode={mode!r})"
    if not has_drop_sampler(version):
        return zero_mode_notice(subject, sample_filter, _needs_new_verl(version))
    if mode == "zero":
        return None  # asked for
    trainer = config.get("trainer") or {}
    if not trainer.get("use_v1", True):
        return zero_mode_notice(
            subject, sample_filter,
            "The legacy trainer (trainer.use_v1=false) has no sampler hook; to drop them, use trainer.use_v1=true.",
        )
    custom = ((trainer.get("v1") or {}).get("sampler") or {}).get("custom_sampler") or {}
    if custom.get("path") != SAMPLER_PATH or custom.get("name") != SAMPLER_NAME:
        return zero_mode_notice(
            subject, sample_filter,
            f"trainer.v1.sampler.custom_sampler is not minimal-rl's ({SAMPLER_PATH} / {SAMPLER_NAME}); to drop them, "
            f"add: {drop_override(sample_filter)}",
        )
    return None
