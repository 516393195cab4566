"""TRL versions that cannot train on this CPU machine: TRL 1.15.x computes log-probs only with a Triton kernel
(trl_ext/version.py), and the trainers refuse to be built on CPU there. Every test that builds a trainer on the
tiny model asks for `tiny_tokenizer` (or `trl_trains_on_cpu`), so under such a TRL it is skipped with the reason,
while the tests of configs, recipes, versions and refusals still run."""

import pytest

from trl_ext.version import check_trl_runs_on


def _cpu_refusal() -> str | None:
    try:
        check_trl_runs_on("cpu")
    except ValueError as refusal:
        return str(refusal)
    return None


CPU_REFUSAL = _cpu_refusal()


@pytest.fixture(scope="session")
def trl_trains_on_cpu() -> None:
    if CPU_REFUSAL is not None:
        pytest.skip(CPU_REFUSAL)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer, trl_trains_on_cpu):
    """tests/conftest.py's tokenizer, for tests that train on CPU."""
    return tiny_tokenizer
