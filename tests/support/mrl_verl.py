"""verl version facts for the tests: the installed verl and the markers that skip what an older verl cannot do
(the compat environment, `make test-compat-verl`, runs the verl tests on the oldest supported verl)."""

from __future__ import annotations

import pytest

from hydra_plugins.minimal_rl_searchpath.verl_host import (
    DROP_SAMPLER_SINCE,
    ENTRY_POINTS_SINCE,
    has_drop_sampler,
    installed_verl,
    loads_entry_points,
)

VERL = installed_verl()
HAS_DROP_SAMPLER = VERL is not None and has_drop_sampler(VERL)
LOADS_ENTRY_POINTS = VERL is not None and loads_entry_points(VERL)

SAMPLER_REASON = (
    f"needs verl >= {DROP_SAMPLER_SINCE} (the v1 trainer's replay buffer, TransferQueue); verl {VERL} is installed"
)
ENTRY_POINTS_REASON = (
    f"needs verl >= {ENTRY_POINTS_SINCE} (verl.plugins entry points, VERL_USE_EXTERNAL_PLUGINS); verl {VERL} is installed"
)
needs_drop_sampler = pytest.mark.skipif(not HAS_DROP_SAMPLER, reason=SAMPLER_REASON)
needs_entry_points = pytest.mark.skipif(not LOADS_ENTRY_POINTS, reason=ENTRY_POINTS_REASON)


def skip_module_without_drop_sampler() -> None:
    """For modules that import verl's v1 trainer at the top: call before those imports."""
    if not HAS_DROP_SAMPLER:
        pytest.skip(SAMPLER_REASON, allow_module_level=True)


def needs_verl(minimum: str, why: str):
    """Skip unless the installed verl is at least ``minimum``; ``why``: what of that verl the test needs."""
    from packaging.version import Version

    return pytest.mark.skipif(
        VERL is None or VERL < Version(minimum), reason=f"needs verl >= {minimum} ({why}); verl {VERL} is installed"
    )
