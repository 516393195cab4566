"""TRL plugin of minimal-rl: the algorithms of Xiong et al. (arXiv 2504.11343) as GRPOTrainer subclasses.

    from trl_ext import RaftConfig, RaftTrainer, ReinforceRejConfig, ReinforceRejTrainer

Switching algorithm is switching class; everything else is GRPOTrainer's (see docs/trl.md).
"""

from .version import check_trl_version

check_trl_version()

from .raft import RaftConfig, RaftTrainer  # noqa: E402
from .reinforce_rej import REINFORCE_ALGORITHMS, ReinforceRejConfig, ReinforceRejTrainer  # noqa: E402
from .weighted import WeightedGRPOConfig, WeightedGRPOTrainer  # noqa: E402

__all__ = [
    "REINFORCE_ALGORITHMS",
    "RaftConfig",
    "RaftTrainer",
    "ReinforceRejConfig",
    "ReinforceRejTrainer",
    "WeightedGRPOConfig",
    "WeightedGRPOTrainer",
    "check_trl_version",
]
