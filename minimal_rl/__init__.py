"""minimal-rl: RAFT, RAFT++ and Reinforce-Rej (Xiong et al., arXiv 2504.11343) for verl and TRL.

This package is the framework-free core (torch and numpy only; never verl, TRL or the adapters):

    minimal_rl.table        the one table of algorithms and sample filters (standard library only)
    minimal_rl.algorithms   group statistics, one function per weight equation and per filter, the RAFT loss
    minimal_rl.filtering    what a filter means for the reward given (uniform, thresholds, the empty-step warning)
    minimal_rl.adaptive     Reinforce-Ada's rules (arXiv 2510.04996): exit, keep, fallback, pool baseline, rounds
    minimal_rl.reward       the Math-Verify reward (+1 / -1)
    minimal_rl.prompts      the paper's prompt template
    minimal_rl.data         answer normalisation and the verl / TRL row formats
    minimal_rl.metrics      the names of the metrics both plugins log (standard library only)

Importing the package itself loads nothing heavy (the Hydra plugin imports `minimal_rl.table` at config time).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_LAZY = {"compute_weights": "minimal_rl.algorithms", "WeightResult": "minimal_rl.algorithms",
         "ALGORITHMS": "minimal_rl.table", "SAMPLE_FILTERS": "minimal_rl.table", "get_algorithm": "minimal_rl.table"}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'minimal_rl' has no attribute {name!r}")
