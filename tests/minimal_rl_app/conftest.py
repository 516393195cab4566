"""Fixtures shared by the application's tests."""

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A demo-model cache folder shared by the tests of one module (the tiny model is built once per module)."""
    return str(tmp_path_factory.mktemp("demo-cache"))
