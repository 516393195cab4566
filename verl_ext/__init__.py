"""verl plugin of minimal-rl: advantage estimators, the RAFT policy loss, the dropping sampler, Hydra presets.

verl >= 0.9 imports this package at ``import verl`` in every process through the ``verl.plugins`` entry point
(pyproject.toml); verl 0.7-0.8 import it from ``VERL_USE_EXTERNAL_MODULES``, which our Hydra plugin sets in the
driver at config time for the Ray cluster ``main_ppo`` starts (``hydra_plugins/minimal_rl_searchpath/verl_host.py``).
Importing it registers the advantage estimators of `minimal_rl.table.ESTIMATOR_NAMES`
(`verl_ext.estimators`) and the policy loss ``raft`` (`verl_ext.losses`). The sampler
(`verl_ext.sampler`) and the presets (``verl_ext/config/minimal_rl/``) are loaded by verl and Hydra by path.

It also installs `verl_ext.compat`: with TRL 1.x installed (our ``[all]`` extra), verl 0.9.1 cannot build a model
because it imports TRL's removed ``AutoModelForCausalLMWithValueHead``; a last-resort import finder provides a
placeholder for it, only when the installed TRL lacks it (logged once).

verl 0.9 swallows a failing plugin import at DEBUG level, so a broken registration would only surface much later
as "Unknown advantage estimator". We log it at ERROR, with the traceback, and re-raise; the Hydra plugin's
registration check also names the underlying import error (every verl version).
"""

from __future__ import annotations

import logging

from hydra_plugins.minimal_rl_searchpath.verl_host import install_hint
from minimal_rl.table import ESTIMATOR_NAMES, LOSS_NAMES

logger = logging.getLogger(__name__)

PACKAGE = "minimal-rl"
INSTALL_HINT = install_hint()  # the fix that works for the installed verl (entry point, or VERL_USE_EXTERNAL_MODULES)

from . import compat  # noqa: E402

compat.install()  # before anything can import verl's models; inert unless verl imports the missing class

try:
    from . import estimators, losses  # noqa: F401  (registration happens at import)
except Exception:
    logger.error("%s: registering the verl estimators and losses failed; %s", PACKAGE, INSTALL_HINT, exc_info=True)
    raise

__all__ = ["ESTIMATOR_NAMES", "LOSS_NAMES", "INSTALL_HINT"]
