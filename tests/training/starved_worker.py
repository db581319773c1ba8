"""Pretraining and ``psfm shards`` on data without one usable scene; one JSON line per case as it ends.

Usage: python -m tests.training.starved_worker WORLD_DIR MISSING_DIR
WORLD_DIR is the tiny world (6 views a scene, asked for at least 7 here); MISSING_DIR holds its train
manifest without the shards. Each case prints ``{"case", "error", "message"}`` when it ends, so when the
loader spins (the bug) the calling test's timeout shows which case never ended.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from psfm.commands import shards
from psfm.datamodules.views import ViewSampling
from psfm.training.train import train
from tests.training.conftest import tiny_command


def pretrain(data: Path, run_dir: Path, too_few_views: bool, resampled: bool, workers: int) -> None:
    command = tiny_command(data.parent, run_dir, max_steps=4)
    command.datamodule.train, command.datamodule.val = str(data), None
    command.datamodule.resampled, command.datamodule.num_workers = resampled, workers
    if too_few_views:
        command.datamodule.views = ViewSampling(min_views=7, max_views=8)
    train(command)


def stream(data: Path, too_few_views: bool, resampled: bool) -> None:
    command = shards.ShardsCommand(data=str(data), verify=False, batches=2)
    command.datamodule.num_workers, command.datamodule.image_size = 0, [32, 32]
    command.datamodule.resampled = resampled
    if too_few_views:
        command.datamodule.views = ViewSampling(min_views=7, max_views=8)
    shards.run(command)


def main() -> None:
    world, missing = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    runs = missing.parent / "runs"
    cases = {
        # resampled: draws shards forever, so the loader itself spun; in workers, the error crosses a process
        "pretrain resampled too_few_views workers=2": lambda: pretrain(world / "train", runs / "a", True, True, 2),
        "pretrain resampled missing": lambda: pretrain(missing, runs / "b", False, True, 0),
        # finite: each epoch ended empty at once and Lightning started the next one, forever
        "pretrain finite too_few_views": lambda: pretrain(world / "train", runs / "c", True, False, 0),
        "pretrain finite missing workers=2": lambda: pretrain(missing, runs / "d", False, False, 2),
        "shards resampled too_few_views": lambda: stream(world / "train", True, True),
        "shards finite missing": lambda: stream(missing, False, False),
    }
    for name, case in cases.items():
        try:
            case()
            error, message = None, ""
        except Exception as caught:
            error, message = type(caught).__name__, str(caught)
        print(json.dumps({"case": name, "error": error, "message": message}), flush=True)


if __name__ == "__main__":
    main()
