from .config import ReinforceRejConfig
from .trainer import ReinforceRejTrainer

__all__ = ["ReinforceRejConfig", "ReinforceRejTrainer"]
