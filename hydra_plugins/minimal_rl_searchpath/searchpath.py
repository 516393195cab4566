"""Hydra SearchPathPlugin: makes ``verl_ext/config`` (shipped in the wheel) a config source, so
``python -m verl.trainer.main_ppo +minimal_rl=reinforce_rej`` finds ``minimal_rl/reinforce_rej.yaml``.

Hydra imports every module under the ``hydra_plugins`` namespace for every Hydra application, so this
module imports nothing heavy (no torch, no verl).
"""

from __future__ import annotations

import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from .registration_check import check_overrides

CONFIG_SOURCE = "pkg://verl_ext.config"


class MinimalRLSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="minimal-rl", path=CONFIG_SOURCE)
        # Runs in the driver at config composition, before any Ray worker or model exists: the
        # earliest point where a missing registration can be reported.
        check_overrides(sys.argv[1:])
