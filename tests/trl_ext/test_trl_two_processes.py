"""Two real processes (torchrun, gloo on CPU): groups straddling ranks, a rank left with nothing, hard drop; and
Reinforce-Ada's rounds over two ranks; refill over two ranks.

`accelerate launch --cpu` silently ran a single process in our trials, so the worker is started with
torchrun and asserts that it sees two processes. The checks themselves live in two_process_worker.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("two_process_worker.py")
ADAPTIVE_WORKER = Path(__file__).with_name("two_process_worker_adaptive.py")
REFILL_WORKER = Path(__file__).with_name("two_process_worker_refill.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(worker: Path, out_dir: Path) -> str:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(worker), str(out_dir),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


@pytest.mark.slow
def test_two_process_selection_hard_drop_and_all_rejected(tmp_path, trl_trains_on_cpu):
    assert "TWO_PROCESS_WORKER_OK" in run_two_processes(WORKER, tmp_path)


@pytest.mark.slow
def test_two_process_adaptive_rounds_are_the_same_on_every_rank(tmp_path, trl_trains_on_cpu):
    """Reinforce-Ada: every rank runs the same rounds over every pool (two_process_worker_adaptive.py)."""
    assert "TWO_PROCESS_ADAPTIVE_OK" in run_two_processes(ADAPTIVE_WORKER, tmp_path)


@pytest.mark.slow
def test_two_process_refill_same_rounds_and_update_on_every_rank(tmp_path, trl_trains_on_cpu):
    """refill=True: the ranks decide on gathered rewards, run the same refill round, and masking and hard drop give
    the same update (two_process_worker_refill.py)."""
    assert "TWO_PROCESS_REFILL_OK" in run_two_processes(REFILL_WORKER, tmp_path)
