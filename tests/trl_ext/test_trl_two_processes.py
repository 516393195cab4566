"""Two real processes (torchrun, gloo on CPU): groups straddling ranks, a rank left with nothing, hard drop.

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_selection_hard_drop_and_all_rejected(tmp_path, trl_trains_on_cpu):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(WORKER), str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "TWO_PROCESS_WORKER_OK" in output, output[-6000:]
