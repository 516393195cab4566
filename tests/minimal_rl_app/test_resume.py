"""SIGTERM is handled like Ctrl-C, and `--resume` continues from the last TRL checkpoint to the same final
metrics and weights as an uninterrupted run (bit for bit on this CPU: TRL restores model, optimiser,
scheduler, RNG states and the data position; checkpoints sit at rollout boundaries)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minimal_rl_app.cli import main

# Reinforce on a random-weight model: every answer is wrong, but its -1 weights still move the policy, so
# losses, KL and entropy change at every step (a real test of exactness).
RUN = ["--tiny-model", "--warmstart-max-steps", "0", "--steps", "8", "--prompts-per-step", "2", "--num-generations", "2",
       "--eval-problems", "4", "--eval-samples", "1", "--eval-every", "2", "--save-every", "2", "--lr", "1e-2",
       "--no-progress"]
REPO = Path(__file__).resolve().parents[2]


def without_timings(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def start(argv, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "minimal_rl_app.cli", *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def terminate_after(proc, metrics: Path, steps: int, timeout: float = 300):
    """SIGTERM once ``metrics`` records ``steps`` steps; returns (rc, stdout, stderr)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(json.loads(metrics.read_text())["steps"]) >= steps:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("demo-cache"))


@pytest.mark.slow
def test_sigterm_then_resume_gives_the_uninterrupted_run(cache, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    algo = ["train", "--algorithm", "reinforce", "--cache-dir", cache]
    assert main([*algo, "--output-dir", str(whole), *RUN]) == 0

    rc, _, err = terminate_after(start([*algo, "--output-dir", str(cut), *RUN], tmp_path), cut / "metrics.json", 5)
    assert rc == 130 and "Traceback" not in err and "terminated (SIGTERM)" in err and "--resume" in err
    partial = json.loads((cut / "metrics.json").read_text())
    assert partial["status"] == "interrupted" and 5 <= len(partial["steps"]) < 8
    assert partial["checkpoint"]["step"] in (4, 6) and (cut / "metrics.png").stat().st_size > 5000
    assert not (cut / "model").exists()

    assert main([*algo, "--output-dir", str(cut), "--resume", *RUN]) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (whole, cut))
    assert b["status"] == "complete"
    assert without_timings(b["steps"]) == without_timings(a["steps"])  # exact, not approximate
    assert without_timings(b["evals"]) == without_timings(a["evals"])
    assert b["summary"]["heldout_kl_end"] == a["summary"]["heldout_kl_end"] > 0
    from safetensors.torch import load_file

    wa, wb = load_file(whole / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    assert all(bool((wa[k] == wb[k]).all()) for k in wa)
    # only the latest checkpoint is kept, and it is listed in the manifest
    assert sorted(p.name for p in (cut / "trl").glob("checkpoint-*")) == ["checkpoint-8"]


def test_resume_refuses_other_settings_and_restarts_a_run_without_checkpoint(cache, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--algorithm", "reinforce", "--cache-dir", cache, "--output-dir", str(out)]
    no_checkpoints = [*RUN[:RUN.index("--save-every")], "--save-every", "0", *RUN[RUN.index("--save-every") + 2:]]
    assert main([*base, *no_checkpoints]) == 0
    payload = json.loads((out / "metrics.json").read_text())
    payload["status"] = "interrupted"  # as if killed before its first checkpoint
    (out / "metrics.json").write_text(json.dumps(payload))
    capsys.readouterr()
    assert main([*base, "--resume", *no_checkpoints]) == 0
    assert "no checkpoint saved yet, starting this run again from step 0" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["status"] == "complete"
    assert main([*base, "--resume", *no_checkpoints]) == 0  # complete: nothing to do
    assert "already complete" in capsys.readouterr().out
    before = (out / "metrics.json").read_bytes()
    assert main([*base, "--resume", *no_checkpoints, "--lr", "1e-3"]) == 2  # other settings: refused up front
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "learning_rate=0.01" in err[0]
    assert (out / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_compare_resume_reuses_finished_runs_and_resumes_the_interrupted_one(cache, tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", "--algorithms", "reinforce", "reinforce_rej", "--cache-dir", cache, "--output-dir", str(out), *RUN]
    rc, _, err = terminate_after(start(argv, tmp_path), out / "reinforce_rej" / "metrics.json", 5)
    assert rc == 130 and "Traceback" not in err
    first = (out / "reinforce" / "metrics.json").read_bytes()
    assert json.loads(first)["status"] == "complete"
    assert json.loads((out / "reinforce_rej" / "metrics.json").read_text())["status"] == "interrupted"
    assert main([*argv, "--resume"]) == 0
    assert (out / "reinforce" / "metrics.json").read_bytes() == first
    second = json.loads((out / "reinforce_rej" / "metrics.json").read_text())
    assert second["status"] == "complete" and [s["step"] for s in second["steps"]] == list(range(1, 9))
    assert "| reinforce_rej |" in (out / "compare.md").read_text()
