"""The verl releases whose private APIs the experimental modules were written and tested against.

`verl_ext.refill` (the replay buffer's private methods) and `verl_ext.adaptive_rollout` (the agent-loop worker's
private methods, a Ray internal) refuse any verl outside this range with `check_tested_verl` (rows in
docs/architecture.md). Light (the range lives in the Hydra plugin's
`verl_host`, which checks it before composing a preset): verl < 0.9 has no TransferQueue to import.
"""

from __future__ import annotations

from hydra_plugins.minimal_rl_searchpath.verl_host import PRIVATE_API_TESTED_BELOW as TESTED_VERL_MAX
from hydra_plugins.minimal_rl_searchpath.verl_host import PRIVATE_API_TESTED_MIN as TESTED_VERL_MIN
from hydra_plugins.minimal_rl_searchpath.verl_host import installed_verl, private_api_tested


def check_tested_verl(feature: str, alternative: str, verl_version: str | None = None) -> None:
    """Raise RuntimeError unless verl (default: the installed one) is in the tested range; the message names
    ``feature`` (what needs the private API) and ``alternative`` (what works without it)."""
    verl_version = verl_version or installed_verl()
    if private_api_tested(verl_version):
        return
    raise RuntimeError(
        f"minimal-rl's {feature} relies on private verl APIs and was tested with verl >={TESTED_VERL_MIN},"
        f"<{TESTED_VERL_MAX}; verl {verl_version} is installed. {alternative}"
    )
