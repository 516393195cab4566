"""Test-wide settings and fixtures. No tests/__init__.py on purpose: verl ships a top-level `tests` package;
the shared builders are in tests/support/mrl_testing.py (on the path through pyproject's pytest `pythonpath`)."""

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


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """Character-level tokenizer built offline (tests/support/mrl_testing.py)."""
    import mrl_testing

    return mrl_testing.build_tokenizer()


@pytest.fixture
def tiny_model(tiny_tokenizer):
    """A fresh 2-layer random Llama (tests/support/mrl_testing.py)."""
    import mrl_testing

    return mrl_testing.build_model(tiny_tokenizer)
