"""Training batches change with the epoch; validation batches never do (comparable curves)."""

from __future__ import annotations

import gc
import os
import re
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import IterableDataset

from psfm.datamodules.datamodule import DataModuleConfig, ResumeMismatchError, SceneDataModule
from psfm.datamodules.epoch import EpochLoader, SharedEpoch
from psfm.datamodules.skips import NoUsableScenesError
from psfm.datamodules.views import ViewSampling
from psfm.errors import UsageError
from tests.conftest import write_scenes_with_views
from tests.datamodules.shard_surgery import rewrite_first_member


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
    first_train, later = _first_batch(train, 0), _first_batch(train, 5)
    assert first_train.scene_keys != later.scene_keys or not torch.equal(first_train.images, later.images)
    # training now in epoch 5 leaves validation where it was: each has its own epoch (mutation testing: the
    # validation loader given the training epoch survived)
    again = _first_batch(datamodule.val_dataloader(), 0)
    assert again.scene_keys == first.scene_keys and torch.equal(again.images, first.images)


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
    trainer = SimpleNamespace(training=True, world_size=1, current_epoch=0)  # what the hooks read from Lightning
    straight = SceneDataModule(config)
    straight.trainer = trainer
    everything = _train_batches(straight)
    assert len(everything) == 6  # 12 scenes, 2 per batch
    # a finished epoch resumes at the next one's first batch (as Lightning's loop does), never at (0, 6): replaying
    # epoch 0 to its end would leave the trainer's first resumed epoch an empty iterator
    assert straight.state_dict() == {"epoch": 1, "consumed_batches": 0, "skipped_total": 0}

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


def _lightning_epochs(datamodule: SceneDataModule, epochs: range) -> list[list]:
    """Scene keys of whole epochs, in the order Lightning's fit loop makes the calls on a resume.

    Its first iterator is built (and a batch prefetched) in ``FitLoop.setup_data``, *before* the epoch
    hook calls ``set_epoch``; every later epoch calls ``set_epoch`` first, then iterates anew.
    """
    datamodule.trainer = SimpleNamespace(training=True, world_size=1, current_epoch=epochs[0])
    loader = datamodule.train_dataloader()
    result = []
    for index, epoch in enumerate(epochs):
        if index == 0:
            iterator = iter(loader)
            loader.sampler.set_epoch(epoch)
        else:
            loader.sampler.set_epoch(epoch)
            iterator = iter(loader)
        datamodule.trainer.current_epoch = epoch
        result.append([datamodule.on_after_batch_transfer(batch, 0).scene_keys for batch in iterator])
    return result


@pytest.mark.parametrize("resampled", [False, True], ids=["finite", "resampled"])
def test_a_resume_in_a_later_epoch_replays_that_epoch_in_the_workers_too(scene_shards, resampled):
    """Two persistent workers read the epoch when Lightning builds the resumed iterator, before ``set_epoch``.

    A resume that waited for ``set_epoch`` to restore the epoch (the old behaviour) streamed epoch 0 from
    batch 0 instead of epoch 1 from batch 2: the workers had already started on epoch 0's shards.
    """
    directory, _ = scene_shards
    config = DataModuleConfig(
        train=str(directory), val=None, batch_size=2, num_workers=2, image_size=[16, 16], augment=False
    )
    config.resampled, config.samples_per_epoch = resampled, 12
    epoch0, epoch1 = _lightning_epochs(SceneDataModule(config), range(2))
    assert epoch0 != epoch1 and len(epoch1) == 6

    resumed = SceneDataModule(config)
    resumed.load_state_dict({"epoch": 1, "consumed_batches": 2})
    [rest] = _lightning_epochs(resumed, range(1, 2))
    assert rest == epoch1[2:]
    # and the finished epoch 1 hands a later resume the start of epoch 2, not (1, 6)
    assert resumed.state_dict() == {"epoch": 2, "consumed_batches": 0, "skipped_total": 0}


def test_a_checkpoint_naming_another_epoch_than_the_trainer_stops_at_the_first_batch(scene_shards):
    """A data position that disagrees with Lightning's loop (old checkpoints of resumed runs hold one) fails loudly.

    Training on would silently use other batches than the uninterrupted run, the bug this guards against.
    """
    directory, _ = scene_shards
    config = DataModuleConfig(train=str(directory), val=None, batch_size=2, num_workers=0, image_size=[16, 16])
    datamodule = SceneDataModule(config)
    datamodule.load_state_dict({"epoch": 0, "consumed_batches": 3})
    with pytest.raises(
        ResumeMismatchError, match="trainer is in epoch 2 but its batches come from the data of epoch 0"
    ):
        _lightning_epochs(datamodule, range(2, 3))


def test_a_state_loaded_after_the_loader_exists_moves_that_loader_once(scene_shards):
    """Lightning may hand the data position back after it built the train loader: that loader resumes there,
    and a loader built later (the next reload) starts its epoch afresh, not at the old position again
    (mutation testing: a pending position left behind survived)."""
    directory, _ = scene_shards
    config = DataModuleConfig(
        train=str(directory), val=None, batch_size=2, num_workers=0, image_size=[16, 16], augment=False
    )

    def keys_resumed_at(epoch: int, consumed: int) -> list:
        reference = SceneDataModule(config)
        reference.load_state_dict({"epoch": epoch, "consumed_batches": consumed})
        return [batch.scene_keys for batch in _train_batches(reference)]

    datamodule = SceneDataModule(config)
    datamodule.train_dataloader()
    datamodule.load_state_dict({"epoch": 1, "consumed_batches": 2, "skipped_total": 5})
    assert [batch.scene_keys for batch in datamodule._train_loader] == keys_resumed_at(1, 2)
    assert datamodule.skipped_total == 5
    assert [batch.scene_keys for batch in _train_batches(datamodule)] == keys_resumed_at(1, 0)


def test_a_loader_that_has_not_run_yet_reports_the_start_of_its_epoch(scene_shards):
    """A checkpoint saved before the first batch must resume at (epoch, 0) with nothing read or skipped
    (mutation testing: an unset epoch and counts starting at 1 survived)."""
    directory, _ = scene_shards
    config = DataModuleConfig(train=str(directory), val=None, batch_size=2, num_workers=0, image_size=[16, 16])
    datamodule = SceneDataModule(config)
    datamodule.train_epoch.set(3)
    loader = datamodule.train_dataloader()
    assert loader.position() == (3, 0) and (loader.scenes_read, loader.scenes_skipped) == (0, 0)
    assert datamodule.state_dict() == {"epoch": 3, "consumed_batches": 0, "skipped_total": 0}


def test_the_configured_image_size_and_view_count_reach_both_loaders(scene_shards):
    """(mutation testing: ``image_size`` and ``views`` left at the loader's defaults survived.)"""
    directory, _ = scene_shards
    config = DataModuleConfig(
        train=str(directory),
        val=str(directory),
        batch_size=2,
        num_workers=0,
        image_size=[24, 16],
        views=ViewSampling(min_views=3, max_views=3),
    )
    datamodule = SceneDataModule(config)
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
        assert next(iter(loader)).images.shape == (2, 3, 3, 24, 16)


def test_samples_per_epoch_below_one_is_refused_naming_its_key():
    """(mutation testing: ``samples_per_epoch`` left out of the check survived.)"""
    with pytest.raises(UsageError, match=r"datamodule\.samples_per_epoch=0 cannot work: it must be at least 1"):
        DataModuleConfig(samples_per_epoch=0)


def test_an_epoch_without_a_batch_says_why_training_stops_and_validation_warns(tmp_path, caplog):
    """Every scene below ``views.min_views``: the training epoch stops naming the data and the bound, and the
    validation epoch says the same in a warning instead of Lightning skipping its loop without a word.

    (mutation testing: the bound passed as None, and a validation loader given a non-callable
    ``on_empty``, survived.)
    """
    write_scenes_with_views(tmp_path / "short", [3, 3, 3])
    source = str(tmp_path / "short")
    config = DataModuleConfig(
        train=source,
        val=source,
        batch_size=2,
        num_workers=0,
        image_size=[16, 16],
        augment=False,
        resampled=False,
        views=ViewSampling(4, 4),
    )
    datamodule = SceneDataModule(config)
    why = "all 3 of its scenes have fewer than views.min_views=4 views ({3: 3} views/scene)"
    with pytest.raises(NoUsableScenesError) as raised:
        list(datamodule.train_dataloader())
    assert str(raised.value) == f"epoch 0 of the training data {source!r} gave no batch: {why}"
    with caplog.at_level("WARNING", logger="psfm.data"):
        assert list(datamodule.val_dataloader()) == []
    assert f"validation epoch 0 of {source!r} gave no batch, so no val/ metric this epoch: {why}" in caplog.text


def test_usable_scenes_that_reach_no_batch_are_explained_with_this_loaders_consumer_count(tmp_path, caplog):
    """A scene with enough views whose image fails to decode: the message counts the loader's consumers as
    ranks x workers with at least one (a loader without workers is one consumer), for training and validation
    alike (mutation testing: ``max(2, consumers)`` in the validation warning survived)."""
    write_scenes_with_views(tmp_path / "bad", [4])
    rewrite_first_member(tmp_path / "bad" / "shard-000000.tar", ".000.rgb.png", lambda data: data[: len(data) // 3])
    source = str(tmp_path / "bad")
    config = DataModuleConfig(
        train=source, val=source, batch_size=1, num_workers=0, image_size=[16, 16], augment=False, resampled=False
    )
    config.views = ViewSampling(4, 4)
    datamodule = SceneDataModule(config)
    why = "1 of its 1 scenes have views.min_views=4 views or more, yet none reached this loader: fewer shards (1) "
    why += "than ranks x workers (1), or images that fail to decode"
    with pytest.raises(NoUsableScenesError, match=re.escape(why)):
        list(datamodule.train_dataloader())
    with caplog.at_level("WARNING", logger="psfm.data"):
        assert list(datamodule.val_dataloader()) == []
    assert why in caplog.text


class _FinalizedInACycle:
    """Garbage the moment it is made (only its own cycle holds it); its finalizer names the process that
    collected it."""

    def __init__(self, marker):
        self.marker, self.itself = marker, self

    def __del__(self):
        with open(self.marker, "a") as file:
            file.write(f"{os.getpid()}\n")


class _CollectingDataset(IterableDataset):
    def __iter__(self):
        gc.collect()  # the worker's collector runs, as it does on its own in any long epoch
        yield torch.zeros(1)


def test_loader_workers_never_collect_the_garbage_they_inherit(tmp_path):
    """Finalizers of inherited garbage run in the parent, never in a forked worker, where the threads they may
    wait on do not exist: a PyAV frame left in a cycle by a video conversion deadlocked every worker.
    """
    marker = tmp_path / "collected_by"
    gc.disable()  # the cycle must still exist when the workers fork
    try:
        _FinalizedInACycle(marker)
        loader = EpochLoader(_CollectingDataset(), SharedEpoch(), num_workers=1, batch_size=None)
        assert len(list(loader)) == 1
    finally:
        gc.enable()
    gc.collect()
    assert marker.read_text().split() == [str(os.getpid())]
