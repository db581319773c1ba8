"""Run a tiny pretraining in its own process(es); rank 0 writes the final metrics as JSON.

Usage: python -m tests.training.distributed_worker WORLD_DIR RUN_DIR STRATEGY DEVICES MAX_STEPS [STEP_DELAY_S]
Lightning's launcher re-runs this same command for every other rank. ``STEP_DELAY_S`` slows each
step so a test can kill the process mid-run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from psfm.training.module import PretrainModule
from psfm.training.train import train
from tests.training.conftest import tiny_command


def main() -> None:
    world, run_dir, strategy = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    devices, max_steps = int(sys.argv[4]), int(sys.argv[5])
    delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    torch.set_num_threads(1)
    if delay:
        original = PretrainModule.on_train_batch_end

        def slow(self, *args):
            original(self, *args)
            time.sleep(delay)

        PretrainModule.on_train_batch_end = slow
    command = tiny_command(world, run_dir, max_steps=max_steps, strategy=strategy, devices=devices)
    command.trainer.deterministic = devices == 1
    metrics = train(command)
    if metrics.get("global_rank", 0) == 0:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
