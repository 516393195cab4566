"""One trainer for any algorithm of `minimal_rl.table`: the only place that maps a name to a trl_ext class.

    from trl_ext import build_trainer
    trainer = build_trainer("reinforce_rej", model="Qwen/Qwen2.5-Math-1.5B", reward_funcs=math_verify_reward,
                            train_dataset=dataset, config={"output_dir": "out", "beta": 0.001})
"""

from __future__ import annotations

from typing import Any

from minimal_rl.table import get_algorithm, get_sample_filter

from .filtered_grpo import FilteredGRPOConfig, FilteredGRPOTrainer
from .raft import RaftConfig, RaftTrainer
from .reinforce_rej import ReinforceRejConfig, ReinforceRejTrainer
from .selection import SampleSelectionConfig, SampleSelectionTrainer

# table family -> (config class, trainer class)
_BY_FAMILY = {
    "raft": (RaftConfig, RaftTrainer),
    "reinforce": (ReinforceRejConfig, ReinforceRejTrainer),
    "grpo": (FilteredGRPOConfig, FilteredGRPOTrainer),
}


def trainer_classes(algorithm: str) -> tuple[type[SampleSelectionConfig], type[SampleSelectionTrainer]]:
    """(config class, trainer class) that train ``algorithm`` (any name of `minimal_rl.table.ALGORITHMS`)."""
    return _BY_FAMILY[get_algorithm(algorithm).family]


def build_config(algorithm: str, sample_filter: str | None = None, **fields: Any) -> SampleSelectionConfig:
    """The config of ``algorithm`` with GRPOConfig / trl_ext ``fields``; ``sample_filter`` replaces the algorithm's
    own filter (None keeps it: ``grpo`` then trains exactly as stock GRPO)."""
    spec = get_algorithm(algorithm)
    config_class, _ = trainer_classes(spec.name)
    chosen = get_sample_filter(sample_filter).name if sample_filter is not None else spec.sample_filter
    return config_class(algorithm=spec.name, sample_filter=chosen, **fields)


def build_trainer(
    algorithm: str,
    model: Any,
    reward_funcs: Any,
    *,
    config: SampleSelectionConfig | dict[str, Any] | None = None,
    sample_filter: str | None = None,
    **trainer_kwargs: Any,
) -> SampleSelectionTrainer:
    """The trainer of ``algorithm``: ``config`` is a ready config of the right class, or a dict of its fields;
    ``trainer_kwargs`` go to the trainer (``train_dataset``, ``processing_class``, ``callbacks``, ...)."""
    config_class, trainer_class = trainer_classes(algorithm)
    if config is None or isinstance(config, dict):
        config = build_config(algorithm, sample_filter=sample_filter, **(config or {}))
    elif not isinstance(config, config_class) or config.algorithm != get_algorithm(algorithm).name:
        raise ValueError(
            f"build_trainer({algorithm!r}) needs a {config_class.__name__} with algorithm={algorithm!r}, got "
            f"{type(config).__name__}(algorithm={getattr(config, 'algorithm', None)!r})"
        )
    elif sample_filter is not None:
        raise ValueError("pass sample_filter inside the config when giving a ready config")
    return trainer_class(model=model, reward_funcs=reward_funcs, args=config, **trainer_kwargs)
