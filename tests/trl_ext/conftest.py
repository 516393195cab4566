"""Fixtures of the TRL trainer tests; the builders live in tiny_trl.py (imported by path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HELPERS_PATH = Path(__file__).with_name("tiny_trl.py")


def load_helpers():
    """tiny_trl.py as a module (no tests/__init__.py, and pytest runs with --import-mode=importlib)."""
    name = "minimal_rl_tests_tiny_trl"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HELPERS_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return load_helpers().build_tokenizer()


@pytest.fixture
def tiny_model(tiny_tokenizer):
    return load_helpers().build_model(tiny_tokenizer)
