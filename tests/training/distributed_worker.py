"""Run a tiny pretraining in its own process(es); rank 0 writes the final metrics as JSON.

Usage: python -m tests.training.distributed_worker WORLD_DIR RUN_DIR STRATEGY DEVICES MAX_STEPS [HOLD_AT_STEP]
Lightning's launcher re-runs this same command for every other rank. ``HOLD_AT_STEP`` > 0 stops the
run after that optimizer step (its checkpoint saved: callbacks run before the module's hook), writes
``RUN_DIR/held`` and sleeps, so a test can kill it at a known point rather than racing the saves.
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
    hold_at_step = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    torch.set_num_threads(1)
    if hold_at_step:
        original = PretrainModule.on_train_batch_end

        def hold(self, *args):
            original(self, *args)
            if self.global_step == hold_at_step:
                (run_dir / "held").write_text(str(self.global_step))
                time.sleep(600)  # until killed

        PretrainModule.on_train_batch_end = hold
    command = tiny_command(world, run_dir, max_steps=max_steps, strategy=strategy, devices=devices)
    command.trainer.deterministic = devices == 1
    metrics = train(command)
    if metrics.get("global_rank", 0) == 0:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
