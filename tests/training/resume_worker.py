"""Crash-and-resume runs under 2-rank DDP on CPU, in one process started by ``test_resume.py``.

Usage: python -m tests.training.resume_worker WORLD_DIR OUT_DIR MODE CRASH_AT_STEP...
MODE is ``finite`` or ``resampled``. Runs ``OUT_DIR/straight`` uninterrupted, then for each crash step
``OUT_DIR/crash<N>``: a run that raises when the batch for step N + 1 arrives, then its resume. Every
rank appends ``[step, scene keys]`` per optimizer step to ``<run>/keys<rank>.jsonl``, so a step trained
again after the resume comes later in the file. ``ddp_fork`` forks the ranks from this process (no
interpreter start-up per run, which is what keeps three runs a case near a few seconds); a separate
process keeps that fork away from pytest's threads and any CUDA state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from psfm.datamodules.datamodule import SceneDataModule
from psfm.training.train import train
from tests.training.conftest import tiny_command

MAX_STEPS = 8  # 24 scenes / (2 ranks x 4 a batch) = 3 batches an epoch: epochs 0, 1 and two steps of 2


class Crash(Exception):
    pass


def command(world: Path, run_dir: Path, resampled: bool):
    result = tiny_command(world, run_dir, max_steps=MAX_STEPS, strategy="ddp_fork", devices=2)
    result.datamodule.batch_size = 4
    result.datamodule.resampled = resampled
    return result


def main() -> None:
    world, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    crash_steps = [int(step) for step in sys.argv[4:]]
    torch.set_num_threads(1)
    crash_at: dict[str, int | None] = {"step": None}
    original = SceneDataModule.on_after_batch_transfer

    def record(self, batch, index):
        trainer = self.trainer
        if trainer.training:
            if trainer.global_step == crash_at["step"]:
                raise Crash(f"crash after step {trainer.global_step}")
            with open(Path(trainer.default_root_dir) / f"keys{trainer.global_rank}.jsonl", "a") as file:
                file.write(json.dumps([trainer.global_step + 1, batch.scene_keys]) + "\n")
        return original(self, batch, index)

    SceneDataModule.on_after_batch_transfer = record  # before the fork: every rank inherits it
    resampled = mode == "resampled"
    train(command(world, out / "straight", resampled))
    for step in crash_steps:
        run = command(world, out / f"crash{step}", resampled)
        crash_at["step"] = step
        try:
            train(run)
        except Exception as error:  # the ranks' Crash, re-raised by the launcher as ProcessRaisedException
            if "crash after step" not in str(error):
                raise
        else:
            raise SystemExit(f"the run meant to crash after step {step} finished")
        crash_at["step"] = None
        train(run)  # resume=auto


if __name__ == "__main__":
    main()
