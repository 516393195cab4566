"""Hydra SearchPathPlugin: makes ``verl_ext/config`` (shipped in the wheel) a config source, so
``python -m verl.trainer.main_ppo +minimal_rl=reinforce_rej`` finds ``minimal_rl/reinforce_rej.yaml``, and
``verl_ext/config_v1`` (the dropping sampler, ``minimal_rl/sampler/drop.yaml``) too where the installed verl has the v1
trainer's sampler hook (verl >= 0.9; `verl_host`).

It is also the earliest code of ours that runs in the driver of every verl version (Hydra calls it at config
composition, before ``main_ppo`` starts Ray): on verl < 0.9, which has no plugin entry points, it loads the
plugin and sets VERL_USE_EXTERNAL_MODULES for the workers (`registration_check.load_plugin_in_driver`).

Hydra imports every module under the ``hydra_plugins`` namespace for every Hydra application, so this
module imports nothing heavy (no torch, no verl).
"""

from __future__ import annotations

import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from .registration_check import check_overrides, load_plugin_in_driver
from .verl_host import has_drop_sampler

CONFIG_SOURCE = "pkg://verl_ext.config"
V1_CONFIG_SOURCE = "pkg://verl_ext.config_v1"


class MinimalRLSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # Runs in the driver at config composition, before any Ray worker or model exists: the
        # earliest point where a missing registration can be reported.
        import_error = load_plugin_in_driver()
        if import_error is None:  # a broken verl_ext (logged) must not break Hydra's lookups of a run without it
            search_path.append(provider="minimal-rl", path=CONFIG_SOURCE)
            if has_drop_sampler():
                search_path.append(provider="minimal-rl", path=V1_CONFIG_SOURCE)
        check_overrides(sys.argv[1:])
