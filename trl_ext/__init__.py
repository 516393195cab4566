"""TRL plugin of minimal-rl: the algorithms of Xiong et al. (arXiv 2504.11343) as GRPOTrainer subclasses.

    from trl_ext import RaftConfig, RaftTrainer, ReinforceRejConfig, ReinforceRejTrainer
    from trl_ext import FilteredGRPOConfig, FilteredGRPOTrainer   # stock GRPO + a sample filter
    from trl_ext import build_trainer                              # any algorithm of minimal_rl.table by name

Switching algorithm is switching class (or name); everything else is GRPOTrainer's (see docs/trl.md).
"""

from .version import check_trl_version

check_trl_version()

from .factory import build_config, build_trainer, trainer_classes  # noqa: E402
from .filtered_grpo import FilteredGRPOConfig, FilteredGRPOTrainer  # noqa: E402
from .raft import RaftConfig, RaftTrainer  # noqa: E402
from .reinforce_rej import ReinforceRejConfig, ReinforceRejTrainer  # noqa: E402
from .selection import SampleSelectionConfig, SampleSelectionTrainer, WeightedGRPOConfig, WeightedGRPOTrainer  # noqa: E402

__all__ = [
    "FilteredGRPOConfig",
    "FilteredGRPOTrainer",
    "RaftConfig",
    "RaftTrainer",
    "ReinforceRejConfig",
    "ReinforceRejTrainer",
    "SampleSelectionConfig",
    "SampleSelectionTrainer",
    "WeightedGRPOConfig",
    "WeightedGRPOTrainer",
    "build_config",
    "build_trainer",
    "check_trl_version",
    "trainer_classes",
]
