"""Training batches change with the epoch; validation batches never do (comparable curves)."""

from __future__ import annotations

import torch

from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule


def _first_batch(loader, epoch: int):
    loader.sampler.set_epoch(epoch)  # the hook Lightning calls
    return next(iter(loader))


def test_validation_ignores_the_epoch_and_training_follows_it(scene_shards):
    directory, _ = scene_shards
    config = DataModuleConfig(
        train=str(directory), val=str(directory), batch_size=2, num_workers=0, image_size=[16, 16], augment=False
    )
    datamodule = SceneDataModule(config)
    val = datamodule.val_dataloader()
    first, later = _first_batch(val, 0), _first_batch(val, 5)
    assert first.scene_keys == later.scene_keys and torch.equal(first.images, later.images)
    train = datamodule.train_dataloader()
    first, later = _first_batch(train, 0), _first_batch(train, 5)
    assert first.scene_keys != later.scene_keys or not torch.equal(first.images, later.images)
