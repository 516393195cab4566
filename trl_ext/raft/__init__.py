from .config import RaftConfig
from .trainer import RaftTrainer

__all__ = ["RaftConfig", "RaftTrainer"]
