"""Which filter mode really applies in this process: the one fact the estimators need from the sampler.

``drop`` and ``refill`` happen in the replay-buffer sampler (`verl_ext.sampler`), which verl builds in the
same process as the advantage computation (the trainer / TaskRunner). When it is not built (legacy trainer
``trainer.use_v1=False``, or v1 without ``trainer.v1.sampler.custom_sampler``), the rejected samples are still
in the batch the estimator sees: that is "zero" mode, and it is announced once.
"""

from __future__ import annotations

import logging
import threading

from .options import DEFAULT_FILTER_MODE, FILTER_MODES

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_sampler_mode: str | None = None
_fallback_warned = False

LEGACY_FALLBACK_MESSAGE = (
    "minimal-rl: filter_mode={mode!r} needs the minimal-rl replay-buffer sampler, which is not active "
    "(legacy trainer `trainer.use_v1=False` has no sampler hook, or "
    "`trainer.v1.sampler.custom_sampler` is not set to pkg://verl_ext.sampler / MinimalRLSampler). "
    "Falling back to filter_mode='zero': rejected samples get weight 0 but still cost old-log-prob, "
    "reference and forward/backward compute, still count in the token-mean denominator (diluting the "
    "gradient by the kept-token fraction) and still receive KL / entropy gradients."
)


def validate_mode(mode: str | None) -> str:
    mode = DEFAULT_FILTER_MODE if mode is None else str(mode).lower()
    if mode not in FILTER_MODES:
        raise ValueError(f"filter_mode must be one of {FILTER_MODES}, got {mode!r}")
    return mode


def mark_sampler_active(mode: str) -> None:
    """Called by the sampler when verl builds it."""
    global _sampler_mode
    with _lock:
        _sampler_mode = validate_mode(mode)


def sampler_mode() -> str | None:
    """The filter mode of the minimal-rl sampler built in this process, or None when there is none."""
    return _sampler_mode


def filter_mode_in_effect(requested: str | None = DEFAULT_FILTER_MODE) -> str:
    """The filter mode that actually applies, for the advantage estimators to call.

    Without the sampler, ``drop`` and ``refill`` cannot happen: this returns ``"zero"`` after one warning
    saying what is lost. The estimators zero the weights of rejected samples in every mode, so the answer only
    decides whether rejected rows can still be in the batch they see.
    """
    global _fallback_warned
    mode = validate_mode(requested)
    if mode == "zero":
        return mode
    if _sampler_mode is not None:
        return _sampler_mode
    with _lock:
        if not _fallback_warned:
            _fallback_warned = True
            logger.warning(LEGACY_FALLBACK_MESSAGE.format(mode=mode))
    return "zero"


def reset_for_tests() -> None:
    """Forget the sampler and the warning (tests build several trainers in one process)."""
    global _sampler_mode, _fallback_warned
    with _lock:
        _sampler_mode = None
        _fallback_warned = False
