"""One rank of the 2-process split test (run under torchrun; not collected by pytest)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.views import ViewSampling


def main(shards: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    config = DataModuleConfig(train=shards, val=shards, batch_size=2, num_workers=2, image_size=[16, 16])
    config.views = ViewSampling(2, 3)
    keys = [key for batch in SceneDataModule(config).val_dataloader() for key in batch.scene_keys]
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"world_size": dist.get_world_size(), "keys": keys}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
