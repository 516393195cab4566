"""The TRL versions this plugin is tested against, checked when `trl_ext` is imported.

`trl_ext` subclasses `GRPOTrainer` and relies on private hooks of it (`_calculate_rewards`,
`_generate_and_score_completions`, `_compute_loss` and the layout of the batch dict they exchange).
Those change between TRL minor releases, so an untested TRL fails loudly at import instead of
training silently with the wrong weights.
"""

from __future__ import annotations

import logging
import os

from packaging.version import InvalidVersion, Version

logger = logging.getLogger(__name__)

TESTED_TRL_MIN = Version("1.16.0")  # inclusive
TESTED_TRL_MAX = Version("1.17.0")  # exclusive
SKIP_CHECK_ENV = "MINIMAL_RL_SKIP_TRL_VERSION_CHECK"


def installed_trl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trl")
    except PackageNotFoundError:
        raise ImportError("trl_ext needs TRL: pip install 'minimal-rl[trl]' (TRL 1.16.x)") from None


def check_trl_version(trl_version: str | None = None) -> None:
    """Raise ImportError unless ``trl_version`` (default: the installed TRL) is in the tested 1.16.x range.

    Setting the environment variable MINIMAL_RL_SKIP_TRL_VERSION_CHECK=1 turns the error into a warning.
    """
    found = trl_version if trl_version is not None else installed_trl_version()
    try:
        parsed = Version(found)
    except InvalidVersion:
        raise ImportError(f"trl_ext: cannot parse the TRL version {found!r}") from None
    # Pre-releases and dev builds of 1.16 (1.16.0rc1, 1.16.1.dev0) count as 1.16.
    if TESTED_TRL_MIN <= Version(parsed.base_version) < TESTED_TRL_MAX:
        return
    message = (
        f"trl_ext is tested with TRL >={TESTED_TRL_MIN},<{TESTED_TRL_MAX} but TRL {found} is installed. "
        "It subclasses GRPOTrainer's internal hooks, which change between TRL releases. Install the tested "
        "version with `pip install 'trl>=1.16,<1.17'`, or set "
        f"{SKIP_CHECK_ENV}=1 to try anyway (at your own risk: check the weights in the logged completions)."
    )
    if os.environ.get(SKIP_CHECK_ENV, "") not in ("", "0"):
        logger.warning(message)
        return
    raise ImportError(message)
