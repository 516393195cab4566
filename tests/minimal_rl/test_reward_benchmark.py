"""benchmarks/reward.py runs end to end and prints its table (tiny sizes: timings are not asserted here)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "reward.py"


@pytest.mark.slow
def test_benchmark_prints_the_table(shared_data, capsys):
    spec = importlib.util.spec_from_file_location("reward_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # verl's built-in is left out here: its 4 spawned workers take half a minute to start on 2 cores
    module.main(["--n", "40", "--mix", "boxed", "--skip", "pebble", "--repeats", "1", "--verl-n", "0", "--pathological", "1", "--timeout", "1",
                 "--data", str(shared_data)])
    out = capsys.readouterr().out
    assert "40 responses (1 pathological)" in out
    labels = ("ours, main thread |", "ours, 8 threads", "ours, async", "Math-Verify direct",
              "verl reward loop, compute_score_async", "verl reward loop, compute_score |")
    for label in labels:
        assert label in out, label
    assert out.count("| 40/40 |") == 6  # all of ours agree with Math-Verify direct on every response
