"""The drop-vs-zero benchmark runs end to end (tiny sizes: timings are not asserted here)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("verl")
pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "drop_vs_zero.py"


def test_benchmark_prints_the_table(capsys):
    spec = importlib.util.spec_from_file_location("drop_vs_zero_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(
        ["--prompts", "2", "--n", "2", "--mini-batch-prompts", "1", "--micro-batch-rows", "2",
         "--prompt-len", "4", "--response-len", "12", "--hidden", "32", "--repeats", "1", "--fractions", "0.5"]
    )
    out = capsys.readouterr().out
    assert "| 0.50 | 4 | 2 (2 + 0) |" in out
