"""Training batches change with the epoch; validation batches never do (comparable curves)."""

from __future__ import annotations

from types import SimpleNamespace

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


def _train_batches(datamodule: SceneDataModule, count: int | None = None) -> list:
    """Up to ``count`` training batches, each passed through the transfer hook as Lightning does (it counts them)."""
    batches = []
    for batch in datamodule.train_dataloader():
        batches.append(datamodule.on_after_batch_transfer(batch, 0))
        if len(batches) == count:
            break
    return batches


def test_a_resumed_epoch_continues_the_batch_count_from_the_checkpoint(scene_shards):
    """``consumed_batches`` is what the *next* resume skips: after a resume it must count on from the checkpoint.

    Restarting at 0 would pass a single crash and resume, then replay already-trained batches on the second.
    """
    directory, _ = scene_shards
    config = DataModuleConfig(
        train=str(directory), val=None, batch_size=2, num_workers=0, image_size=[16, 16], augment=False
    )
    trainer = SimpleNamespace(training=True, world_size=1)  # what the hooks read from Lightning's trainer
    straight = SceneDataModule(config)
    straight.trainer = trainer
    everything = _train_batches(straight)
    assert len(everything) == 6 and straight.state_dict()["consumed_batches"] == 6  # 12 scenes, 2 per batch

    first = SceneDataModule(config)
    first.trainer = trainer
    _train_batches(first, 2)
    state = first.state_dict()
    assert state == {"epoch": 0, "consumed_batches": 2, "skipped_total": 0}

    resumed = SceneDataModule(config)
    resumed.trainer = trainer
    resumed.load_state_dict(state)
    rest = _train_batches(resumed, 2)
    assert [b.scene_keys for b in rest] == [b.scene_keys for b in everything[2:4]]  # the epoch replays from batch 2
    assert all(torch.equal(a.images, b.images) for a, b in zip(rest, everything[2:4], strict=True))
    assert resumed.state_dict()["consumed_batches"] == 4  # 2 before the checkpoint + 2 since

    again = SceneDataModule(config)  # a second crash and resume picks up exactly where the first resume stopped
    again.trainer = trainer
    again.load_state_dict(resumed.state_dict())
    assert [b.scene_keys for b in _train_batches(again)] == [b.scene_keys for b in everything[4:]]
