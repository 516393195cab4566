"""The TRL versions this plugin is tested against, checked when `trl_ext` is imported (and, for what a TRL
version cannot do on a device, when a trainer is built).

`trl_ext` subclasses `GRPOTrainer` and relies on private hooks of it (`_calculate_rewards`,
`_generate_and_score_completions`, `_compute_loss` and the layout of the batch dict they exchange).
Those change between TRL minor releases, so an untested TRL fails loudly at import instead of
training silently with the wrong weights. Tested: 1.14.2, 1.15.0 (construction only, see below) and 1.16.0.

TRL 1.15.x computes every log-probability through its fused LM head (`trl.trainer.utils.add_fused_lm_head`, always
installed by `GRPOTrainer.__init__`, no setting turns it off), whose only implementation is a Triton kernel
(`trl.kernels.chunked_logprob` imports `triton` unconditionally; TRL 1.16 added a torch fallback). Without Triton or
on a CPU device, stock `GRPOTrainer` fails at its first log-prob (`'NoneType' object has no attribute 'apply'`),
so the trainers refuse at construction instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from packaging.version import InvalidVersion, Version

logger = logging.getLogger(__name__)

TESTED_TRL_MIN = Version("1.14.2")  # inclusive
TESTED_TRL_MAX = Version("1.17.0")  # exclusive
# TRL versions whose log-probs exist only as a Triton kernel (CUDA / XPU devices): [min, max)
TRITON_ONLY_TRL = (Version("1.15.0"), Version("1.16.0"))
TRITON_DEVICE_TYPES = ("cuda", "xpu")
SKIP_CHECK_ENV = "MINIMAL_RL_SKIP_TRL_VERSION_CHECK"
INSTALL_HINT = "pip install 'trl>=1.14.2,<1.17'"


def installed_trl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trl")
    except PackageNotFoundError:
        raise ImportError(f"trl_ext needs TRL: pip install 'minimal-rl[trl]' (TRL {TESTED_TRL_MIN} to 1.16.x)") from None


def _release(trl_version: str) -> Version:
    try:
        # Pre-releases and dev builds (1.16.0rc1, 1.16.1.dev0) count as their release.
        return Version(Version(trl_version).base_version)
    except InvalidVersion:
        raise ImportError(f"trl_ext: cannot parse the TRL version {trl_version!r}") from None


def check_trl_version(trl_version: str | None = None) -> None:
    """Raise ImportError unless ``trl_version`` (default: the installed TRL) is in the tested range
    (>= 1.14.2, < 1.17).

    Setting the environment variable MINIMAL_RL_SKIP_TRL_VERSION_CHECK=1 turns the error into a warning.
    """
    found = trl_version if trl_version is not None else installed_trl_version()
    if TESTED_TRL_MIN <= _release(found) < TESTED_TRL_MAX:
        return
    message = (
        f"trl_ext is tested with TRL >={TESTED_TRL_MIN},<{TESTED_TRL_MAX} but TRL {found} is installed. "
        "It subclasses GRPOTrainer's internal hooks, which change between TRL releases. Install a tested "
        f"version with `{INSTALL_HINT}`, or set "
        f"{SKIP_CHECK_ENV}=1 to try anyway (at your own risk: check the weights in the logged completions)."
    )
    if os.environ.get(SKIP_CHECK_ENV, "") not in ("", "0"):
        logger.warning(message)
        return
    raise ImportError(message)


def check_trl_runs_on(device_type: str, trl_version: str | None = None, triton_available: bool | None = None) -> None:
    """Raise ValueError where the TRL version cannot compute log-probs on ``device_type`` (TRL 1.15.x off a Triton
    device: CPU, MPS, or CUDA without the `triton` package)."""
    found = trl_version if trl_version is not None else installed_trl_version()
    if not TRITON_ONLY_TRL[0] <= _release(found) < TRITON_ONLY_TRL[1]:
        return
    if triton_available is None:
        triton_available = importlib.util.find_spec("triton") is not None
    if device_type in TRITON_DEVICE_TYPES and triton_available:
        return
    missing = "the `triton` package is not installed" if device_type in TRITON_DEVICE_TYPES else (
        f"the trainer runs on {device_type!r}"
    )
    raise ValueError(
        f"TRL {found} computes log-probabilities only with its Triton fused LM head (CUDA or XPU with `triton`), and "
        f"{missing}: stock GRPOTrainer fails the same way at its first step. Use TRL 1.14.2 or 1.16.x there "
        f"(`pip install 'trl==1.14.2'` or `pip install 'trl>=1.16,<1.17'`)."
    )


def check_liger_path(use_liger_kernel: bool, grpo_trainer_class: type) -> None:
    """Raise ValueError where ``use_liger_kernel=True`` would bypass `GRPOTrainer._compute_loss`.

    TRL <= 1.13 routes the loss of `use_liger_kernel=True` through `GRPOTrainer.compute_liger_loss` (Liger's fused
    GRPO loss), which never calls `_compute_loss` (RAFT's override) nor reads the `tool_mask` our sample filter
    zeroes: RAFT's loss and the filter would silently not apply. From 1.14.2 to 1.16 the flag only changes how
    log-probs are computed (1.14.2: TRL's chunked LM head) or which layer kernels run (1.15, 1.16), and the loss is
    `_compute_loss` with our weights and masks. Detected by the method, so it holds whatever the version check says.
    """
    if use_liger_kernel and hasattr(grpo_trainer_class, "compute_liger_loss"):
        raise ValueError(
            "use_liger_kernel=True is not supported with this TRL: its GRPOTrainer computes the loss in "
            "`compute_liger_loss` (Liger's fused GRPO loss), bypassing `_compute_loss` and the loss mask that trl_ext "
            "uses to leave rejected samples out, so the algorithm's loss and sample filter would silently not apply. "
            f"Set use_liger_kernel=False, or install a TRL where the flag only swaps kernels (`{INSTALL_HINT}`)."
        )
