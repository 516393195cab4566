"""minimal-rl: RAFT, RAFT++ and Reinforce-Rej (Xiong et al., arXiv 2504.11343) for verl and TRL.

This package is the framework-free core; it imports torch and numpy only.
"""

from minimal_rl.algorithms import ALGORITHMS, WeightResult, compute_weights, get_algorithm

__version__ = "0.1.0"

__all__ = ["ALGORITHMS", "WeightResult", "compute_weights", "get_algorithm", "__version__"]
