"""Real processes: 2-rank DDP and FSDP2 runs on CPU, and kill -9 then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from psfm.export import load

ROOT = Path(__file__).resolve().parents[2]


def worker(world: Path, run_dir: Path, strategy: str, devices: int, max_steps: int, hold_at_step: int = 0):
    command = [sys.executable, "-m", "tests.training.distributed_worker", str(world), str(run_dir), strategy]
    command += [str(devices), str(max_steps), str(hold_at_step)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_process_run_on_cpu(tiny_world, tmp_path, strategy):
    run_dir = tmp_path / strategy
    finish(worker(tiny_world, run_dir, strategy, devices=2, max_steps=4))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == 4
    assert all(map(torch.isfinite, map(torch.tensor, (metrics["train/loss"], metrics["val/loss"]))))
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4
    encoder = load(run_dir / "export")
    assert encoder(torch.rand(1, 2, 3, 32, 32)).shape == (1, 4, 32)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_parameters(tiny_world, tmp_path):
    finish(worker(tiny_world, tmp_path / "straight", "auto", devices=1, max_steps=10))  # same threads as below

    killed = tmp_path / "killed"
    process = worker(tiny_world, killed, "auto", devices=1, max_steps=10, hold_at_step=4)
    deadline = time.monotonic() + 180
    while not (killed / "held").exists():  # the run stops right after step 4's checkpoint, then we kill it
        assert process.poll() is None, "run ended before it could be killed:\n" + process.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "run never reached step 4"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # every checkpoint on disk loads (a torn one raises here, it is not retried), the last one is step 4, and
    # no temporary (AtomicFile names them .<name>.<random>.tmp) was left behind
    checkpoints = {path.name: torch.load(path, weights_only=True) for path in killed.rglob("*.ckpt")}
    assert checkpoints["last.ckpt"]["global_step"] == 4
    assert list(killed.rglob("*.tmp")) == []
    finish(worker(tiny_world, killed, "auto", devices=1, max_steps=10))

    straight = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=True)
    resumed = torch.load(killed / "checkpoints/last.ckpt", weights_only=True)
    assert resumed["global_step"] == straight["global_step"] == 10
    different = [k for k, v in straight["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert different == []
