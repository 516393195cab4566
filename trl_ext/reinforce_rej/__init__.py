from .config import REINFORCE_ALGORITHMS, ReinforceRejConfig
from .trainer import ReinforceRejTrainer

__all__ = ["REINFORCE_ALGORITHMS", "ReinforceRejConfig", "ReinforceRejTrainer"]
