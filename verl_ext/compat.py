"""verl 0.9.1 and TRL >= 1.x in one environment: a stand-in for TRL's removed value-head class.

The limitation: verl 0.9.1 imports ``AutoModelForCausalLMWithValueHead`` whenever TRL is importable,
``from trl.experimental.ppo import ...`` falling back to ``from trl import ...``:

- ``verl/models/transformers/monkey_patch.py`` (``apply_monkey_patch``, run on every actor, reference
  and critic model build) only to replace the class's ``state_dict``;
- ``verl/utils/model.py`` (``patch_valuehead_model`` / ``load_valuehead_model``), the critic fallback for
  a checkpoint that is not a token-classification model.

TRL 1.16 (what ``minimal-rl[trl]`` needs) has the class in neither place, so with both installed (our
``[all]`` extra) verl cannot build its actor at all: ImportError on every ``main_ppo`` run.

The fix, installed by ``import verl_ext`` (which verl performs at ``import verl`` in every process,
through the ``verl.plugins`` entry point): an import finder at the *end* of ``sys.meta_path``. It only
ever answers for ``trl.experimental.ppo``, and only when every other finder said no, i.e. when the
installed TRL does not have that module (a TRL that has it is used as is; without TRL the parent
import fails first and nothing changes). It never imports TRL itself. The module it provides holds a
placeholder ``AutoModelForCausalLMWithValueHead``: verl's monkey patch sets ``state_dict`` on it and
goes on; building a value-head model with it (``from_pretrained`` or the constructor) raises
`ValueHeadUnavailableError`, naming this limitation. The first use logs one WARNING per process.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from types import ModuleType

logger = logging.getLogger(__name__)

STUB_MODULE = "trl.experimental.ppo"
STUB_MARKER = "__minimal_rl_stub__"  # set on the module the finder provides

WARNING_MESSAGE = (
    "minimal-rl: the installed TRL has no `trl.experimental.ppo.AutoModelForCausalLMWithValueHead` "
    "(removed in TRL 1.x), which verl 0.9.1 imports whenever TRL is installed. Using a placeholder so "
    "verl can build its models (verl only patches the class's state_dict). verl's value-head critic "
    "fallback (a critic from a causal-LM checkpoint) is unavailable in this environment."
)
ERROR_MESSAGE = (
    "verl asked for a value-head model (trl AutoModelForCausalLMWithValueHead), but the installed TRL "
    "no longer has that class and minimal-rl only provides a placeholder for verl's import of it "
    "(verl_ext/compat.py). verl's value-head critic fallback needs an environment with a TRL that still "
    "has the class (and not minimal-rl[trl], which needs TRL 1.16), or a critic checkpoint that loads "
    "as AutoModelForTokenClassification."
)

_warn_lock = threading.Lock()
_warned = False


class ValueHeadUnavailableError(ImportError):
    """A value-head model was requested from the placeholder class."""


def _make_placeholder() -> type:
    class AutoModelForCausalLMWithValueHead:
        """Placeholder for TRL's removed class (see `verl_ext.compat`). verl sets attributes on it;
        instantiating it raises `ValueHeadUnavailableError`."""

        __minimal_rl_stub__ = True

        def __init__(self, *args, **kwargs):
            raise ValueHeadUnavailableError(ERROR_MESSAGE)

        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            raise ValueHeadUnavailableError(ERROR_MESSAGE)

    AutoModelForCausalLMWithValueHead.__module__ = STUB_MODULE
    return AutoModelForCausalLMWithValueHead


def _warn_once() -> None:
    global _warned
    with _warn_lock:
        if not _warned:
            _warned = True
            logger.warning(WARNING_MESSAGE)


class _PlaceholderLoader(importlib.abc.Loader):
    def create_module(self, spec):  # default module creation
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__doc__ = "minimal-rl placeholder for a module the installed TRL lacks (verl_ext/compat.py)."
        module.AutoModelForCausalLMWithValueHead = _make_placeholder()
        setattr(module, STUB_MARKER, True)
        _warn_once()


class TrlValueHeadFinder(importlib.abc.MetaPathFinder):
    """Last-resort finder for ``trl.experimental.ppo`` (see the module docstring)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != STUB_MODULE:
            return None
        # Reached only when every finder before this one (the real import system) found nothing.
        return importlib.machinery.ModuleSpec(fullname, _PlaceholderLoader(), origin="minimal-rl placeholder")


def install() -> None:
    """Append the finder to ``sys.meta_path`` (idempotent). Costs nothing until verl's import runs."""
    if not any(type(f).__name__ == TrlValueHeadFinder.__name__ for f in sys.meta_path):
        sys.meta_path.append(TrlValueHeadFinder())


def is_placeholder(obj) -> bool:
    """True for the module or class this compatibility fix provides."""
    return bool(getattr(obj, STUB_MARKER, False))
