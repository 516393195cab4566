"""The GPU benchmark kit (benchmarks/gpu/run.py) runs end to end in its CPU smoke mode, so it cannot rot before a
GPU machine is lent. Timings are not asserted (a tiny model on shared cores): only that every cell ran and that
the rows, tokens and ratios are the ones the controlled rejected fractions imply."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("datasets")
pytest.importorskip("math_verify")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu" / "run.py"
FRACTIONS = (0.25, 0.5, 0.75)
SMOKE_ROWS, SMOKE_TOKENS = 4 * 4, 8  # --smoke: 4 prompts x 4 completions of 8 tokens


def _run(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_smoke_run_has_every_cell_with_sane_values(tmp_path):
    done = _run("--smoke", "--no-install", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-benchmark.json").read_text())
    table = (tmp_path / "gpu-benchmark.md").read_text()
    assert table.strip() in done.stdout  # the printed table is the written one
    cells = {(c["section"], c["cell"], c["f"]): c for c in report["cells"]}
    assert all(c["status"] == "ok" for c in report["cells"]), [c for c in report["cells"] if c["status"] != "ok"]

    reward_rows = [c for c in report["cells"] if c["section"] == "reward"]
    assert [c["cell"] for c in reward_rows] == ["Math-Verify direct, 1 thread", "ours, 1 thread",
                                                f"ours, {report['meta']['env']['cpu_cores']} threads",
                                                "ours, async (gather)"]
    for row in reward_rows:
        assert row["rows"] == 12 and row["rate"] > 0
        if row["cell"] != "Math-Verify direct, 1 thread":
            assert row["extra"]["same_verdicts_as_math_verify"] == "12/12"
            assert 0 < row["ratio"] < math.inf

    generation = cells[("trl", "generation (model.generate, replayed below)", None)]
    assert generation["rows"] == SMOKE_ROWS and generation["step_s"] > 0
    stock, ours = cells[("trl", "stock GRPOTrainer", None)], cells[("trl", "FilteredGRPO none", None)]
    again = cells[("trl", "stock GRPOTrainer (again)", None)]
    for row in (stock, ours, again):
        assert row["rows"] == SMOKE_ROWS and row["kept_tokens"] == SMOKE_ROWS * SMOKE_TOKENS
        assert row["step_s"] > 0 and row["score_s"] > 0 and row["update_s"] > 0
    assert ours["ratio"] == pytest.approx((stock["step_s"] + again["step_s"]) / 2 / ours["step_s"])
    assert ours["target"] == "≥ 0.98× stock"

    for name in ("ReinforceRej", "RAFT"):
        for f in FRACTIONS:
            masked, dropped = cells[("trl", f"{name} mask", f)], cells[("trl", f"{name} hard_drop", f)]
            kept_rows = round(SMOKE_ROWS * (1 - f))
            assert masked["rows"] == SMOKE_ROWS and dropped["rows"] == kept_rows  # no filler rows at these sizes
            assert masked["kept_tokens"] == dropped["kept_tokens"] == kept_rows * SMOKE_TOKENS
            assert dropped["ratio"] == pytest.approx(dropped["update_s"] / masked["update_s"])
            assert dropped["target"] == f"≤ {1 - f + 0.05:.2f}× mask" and isinstance(dropped["met"], bool)
            assert f"| {name} hard_drop | {f:.2f} | ok |" in table
    assert "skipped: 0 cell(s)" in table and "errors: 0 cell(s)" in table


@pytest.mark.parametrize("args, message", [
    (("--smoke", "--prompts", "6"), "--prompts must be a positive multiple of 4"),
    (("--sizes", "0.5B"), "no CUDA device here"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, message):
    import torch

    if torch.cuda.is_available() and "--smoke" not in args:
        pytest.skip("a GPU is present: the run would start")
    out = tmp_path / "out"
    done = _run(*args, "--no-install", "--out", str(out), timeout=120)
    assert done.returncode == 2
    assert message in done.stderr
    assert not out.exists()


def test_past_the_deadline_cells_are_skipped_and_said_so(tmp_path):
    done = _run("--smoke", "--no-install", "--budget", "1", "--out", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-benchmark.json").read_text())
    statuses = {(c["section"], c["cell"]): c["status"] for c in report["cells"]}
    assert statuses[("trl", "all cells")] == "skipped: deadline"
    assert list(statuses.values()).count("skipped: deadline") >= 2  # every reward scorer after the first too
    assert "skipped: " in (tmp_path / "gpu-benchmark.md").read_text()


def test_the_wheel_list_pins_the_tested_hosts_and_never_torch_or_transformers():
    from packaging.requirements import Requirement
    from packaging.version import Version

    import importlib.util

    spec = importlib.util.spec_from_file_location("trl_ext_version", REPO / "trl_ext" / "version.py")
    version = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(version)  # by path: importing trl_ext would import TRL

    pins = {}
    for line in (REPO / "benchmarks" / "gpu" / "wheels.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[requirement.name.lower().replace("_", "-")] = Version(spec.version)
    assert {"trl", "datasets", "math-verify"} <= set(pins)
    assert not {"torch", "transformers", "accelerate", "vllm"} & set(pins)
    assert version.TESTED_TRL_MIN <= pins["trl"] < version.TESTED_TRL_MAX
    assert Version("0.8") <= pins["math-verify"] < Version("0.10")  # pyproject's [math] extra
