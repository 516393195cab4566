from .config import FilteredGRPOConfig
from .trainer import FilteredGRPOTrainer

__all__ = ["FilteredGRPOConfig", "FilteredGRPOTrainer"]
