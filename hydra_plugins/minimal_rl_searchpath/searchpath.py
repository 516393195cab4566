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

from .registration_check import check_overrides, load_plugin_in_driver, logger, plugin_import_error
from .verl_host import has_drop_sampler, install_hint

CONFIG_SOURCE = "pkg://verl_ext.config"
V1_CONFIG_SOURCE = "pkg://verl_ext.config_v1"


class MinimalRLSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # Runs in the driver at config composition, before any Ray worker or model exists: the
        # earliest point where a missing registration can be reported.
        import_error = load_plugin_in_driver()
        check_overrides(sys.argv[1:])
        if import_error is None and "verl" in sys.modules and "verl_ext" not in sys.modules:
            # verl >= 0.9 logged a failing plugin at DEBUG only; Hydra would import it to read our configs
            import_error = plugin_import_error()
            if import_error:
                logger.error("minimal-rl: the verl plugin (verl_ext) does not import: %s; %s", import_error, install_hint())
        if import_error is None:  # a broken verl_ext (logged) must not break Hydra's lookups of a run without it
            search_path.append(provider="minimal-rl", path=CONFIG_SOURCE)
            if has_drop_sampler():
                search_path.append(provider="minimal-rl", path=V1_CONFIG_SOURCE)
