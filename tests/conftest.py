"""Test-wide settings. No tests/__init__.py on purpose: verl ships a top-level `tests` package."""

import os
from pathlib import Path

import pytest

# Single-threaded torch is ~10x faster for TRL's tiny steps on 2 cores; nothing may reach a hub.
for key, value in {
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}.items():
    os.environ.setdefault(key, value)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark files in ../shared/data (never copied into the project)."""
    if not (SHARED_DATA / "math500.jsonl").exists():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (the project's ../shared/data)")
    return SHARED_DATA
