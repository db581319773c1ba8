"""``SceneDataModule``: scene shards -> ``MultiViewBatch`` for Lightning (train and val splits)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from functools import partial

import lightning as L
import torch

from psfm.datamodules.epoch import EpochLoader, SharedEpoch
from psfm.datamodules.inspect import why_no_batch
from psfm.datamodules.pipeline import LoaderOptions, build_pipeline
from psfm.datamodules.pose_noise import PoseNoise
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.skips import NoUsableScenesError
from psfm.datamodules.transforms import PhotometricAugmentation
from psfm.datamodules.views import ViewSampling
from psfm.errors import UsageError, require_at_least
from psfm.types import MultiViewBatch

log = logging.getLogger("psfm.data")


@dataclass
class DataModuleConfig:
    """Hydra schema of ``configs/datamodule/*.yaml`` (see ``LoaderOptions`` for the stream knobs).

    Attributes:
        train, val: shard sources (folder with a manifest, glob, brace pattern, ``pipe:``; ``::`` joins).
        resampled: training draws shards with replacement; an epoch is then ``samples_per_epoch``
            scenes over all ranks (default: the manifest's count). Single-process validation reads
            each scene exactly once; multi-rank validation draws shards with replacement so every
            rank yields the same number of batches (the manifest's count over all ranks).
        augment: colour jitter on the device after transfer, per view, on the images the encoder sees;
            the teachers keep the clean images (``MultiViewBatch.clean_images``), so targets stay a
            function of the scene and camera that the decoder can predict.
        pose_noise: rotation/translation noise on training poses (``PoseNoise``), to mimic predicted poses.
    """

    train: str = "data/world/train"
    val: str | None = "data/world/val"
    batch_size: int = 4
    val_batch_size: int | None = None
    num_workers: int = 2
    image_size: list[int] = field(default_factory=lambda: [128, 128])
    views: ViewSampling = field(default_factory=ViewSampling)
    resampled: bool = True
    samples_per_epoch: int | None = None
    shuffle_buffer: int = 64
    crop: str = "random"
    load_depth: bool = False
    load_mask: bool = False
    augment: bool = True
    pose_noise: PoseNoise = field(default_factory=PoseNoise)
    pin_memory: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        batches = {"batch_size": self.batch_size, "val_batch_size": self.val_batch_size}
        require_at_least(1, "datamodule", **batches, samples_per_epoch=self.samples_per_epoch)
        require_at_least(0, "datamodule", num_workers=self.num_workers, shuffle_buffer=self.shuffle_buffer)
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise UsageError(f"datamodule.image_size={list(self.image_size)} cannot work: give [height, width] >= 1")


class ResumeMismatchError(RuntimeError):
    """Resuming would train on other batches than the uninterrupted run (the data and trainer epochs differ)."""


class SceneDataModule(L.LightningDataModule):
    """Streams scene shards through the webdataset stages of ``psfm.datamodules.pipeline``.

    ``skipped_total`` accumulates ``MultiViewBatch.skipped`` of batches seen by this process;
    the training module reduces it over ranks when logging.
    """

    def __init__(self, config: DataModuleConfig):
        super().__init__()
        self.config = config
        self.train_epoch = SharedEpoch()
        self.val_epoch = SharedEpoch()
        self.augmentation = PhotometricAugmentation() if config.augment else None
        self.skipped_total = 0
        self._train_loader: EpochLoader | None = None
        self._resume: tuple[int, int] | None = None

    def _options(self, train: bool) -> LoaderOptions:
        config = self.config
        return LoaderOptions(
            batch_size=config.batch_size if train else (config.val_batch_size or config.batch_size),
            image_size=tuple(config.image_size),
            views=config.views,
            # several ranks validate on resampled shards: each then yields the same number of batches, which
            # the metrics' cross-rank reductions need (a rank without a val shard would otherwise hang them)
            resampled=(config.resampled and train) or (not train and self._world_size() > 1),
            shuffle_buffer=config.shuffle_buffer if train else 1,
            shuffle_shards=train,
            crop=config.crop if train else "center",
            load_depth=config.load_depth,
            load_mask=config.load_mask,
            pose_noise=config.pose_noise if train else None,
            seed=config.seed,
        )

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _loader(self, sources: str, train: bool) -> EpochLoader:
        shards = resolve_shards(sources)
        options = self._options(train)
        if options.resampled:
            total = (self.config.samples_per_epoch if train else None) or shards.num_samples
            if total is None:
                raise ValueError(
                    f"datamodule.samples_per_epoch must be set: {sources!r} has no manifest to count scenes from"
                )
            options = replace(
                options, batches_per_epoch=max(1, math.ceil(total / (self._world_size() * options.batch_size)))
            )
        workers = self.config.num_workers
        epoch = self.train_epoch if train else self.val_epoch
        dataset = build_pipeline(shards.urls, options, epoch, workers, shards.scene_counts)
        # plain values, not a method: a loader pointing back at its datamodule would close a cycle, and a
        # loader in a cycle shuts its persistent workers down only at a gc pass, timing out 5 s a worker
        consumers = self._world_size() * workers
        on_empty = partial(
            _no_batch if train else _no_val_batch, sources, shards.urls, self.config.views.min_views, consumers
        )
        return EpochLoader(
            dataset,
            epoch,
            follow_epoch=train,
            on_empty=on_empty,
            manifest_scenes=None if options.resampled else shards.num_samples,
            batch_size=None,  # the pipeline batches (one V per batch)
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.config.pin_memory and torch.cuda.is_available(),
            collate_fn=None,
            # its own generator: creating an iterator then draws no number from the global RNG, which
            # the device-side augmentation uses and checkpoints restore (exact resume)
            generator=torch.Generator().manual_seed(self.config.seed),
        )

    def train_epoch_account(self) -> tuple[int, int, bool, int] | None:
        """(scenes read, scenes skipped, read to its end, scenes the manifests list) of this process's latest
        training epoch; None when there is nothing to compare with (resampled epochs draw shards at random;
        a glob or ``pipe:`` source has no manifest), the same answer on every rank."""
        loader = self._train_loader
        if loader is None or loader.manifest_scenes is None:
            return None
        return loader.scenes_read, loader.scenes_skipped, loader.exhausted, loader.manifest_scenes

    def train_dataloader(self) -> EpochLoader:
        self._train_loader = self._loader(self.config.train, train=True)
        if self._resume is not None:
            self._train_loader.resume_at(*self._resume)
            self._resume = None
        return self._train_loader

    # exact resume: Lightning stores this in checkpoints and hands it back before it builds the loaders
    def state_dict(self) -> dict[str, int]:
        """Where a resume must start: (epoch, batches already trained on) of the next batch, and the skip count.

        Usually the train loader's ``position``. But once Lightning's loop has closed an epoch the loader
        did not finish (``max_steps`` reached mid-epoch, then ``FinalCheckpoint`` saves), a resume from
        this checkpoint starts the trainer's next epoch at its first batch, so the data must too: its
        rest of the closed epoch is what any Lightning dataloader loses there.
        """
        if self._train_loader is not None:
            epoch, consumed = self._train_loader.position()
        else:
            epoch, consumed = self._resume or (self.train_epoch.get(), 0)
        trainer_epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if trainer_epoch > epoch:
            epoch, consumed = trainer_epoch, 0
        return {"epoch": epoch, "consumed_batches": consumed, "skipped_total": self.skipped_total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["consumed_batches"]))
        self.skipped_total = int(state.get("skipped_total", 0))
        if self._train_loader is not None:
            self._train_loader.resume_at(*self._resume)
            self._resume = None

    def val_dataloader(self) -> EpochLoader | list:
        return self._loader(self.config.val, train=False) if self.config.val else []

    def on_after_batch_transfer(self, batch: MultiViewBatch, dataloader_idx: int) -> MultiViewBatch:
        self.skipped_total += batch.skipped
        training = self.trainer is not None and self.trainer.training
        if training and self._train_loader is not None:
            self._check_epoch(self._train_loader.epoch)
            self._train_loader.consumed += 1
        if self.augmentation is not None and training:
            batch.clean_images = batch.images
            batch.images = self.augmentation(batch.images)
        return batch

    def _check_epoch(self, data_epoch: int) -> None:
        """Every batch the trainer trains on in its epoch E must come from the data stream of epoch E.

        They part when a checkpoint's data position disagrees with its loop state (one written by a
        psfm that lost the epoch on resume); training on would silently use other batches than the
        run that was never interrupted, so it stops here instead.
        """
        trainer_epoch = self.trainer.current_epoch
        if data_epoch != trainer_epoch:
            raise ResumeMismatchError(
                f"the trainer is in epoch {trainer_epoch} but its batches come from the data of epoch {data_epoch}: "
                "the resumed checkpoint's data position disagrees with its loop state (a checkpoint from a psfm "
                "that lost the epoch on resume?); resume from an earlier checkpoint, or start over with resume=never"
            )


def _no_batch(sources: str, urls: tuple[str, ...], min_views: int, consumers: int, epoch: int) -> None:
    """A training epoch without one batch: stop (the trainer would begin the next, forever) and say why."""
    why = why_no_batch(urls, min_views, max(1, consumers))
    raise NoUsableScenesError(f"epoch {epoch} of the training data {sources!r} gave no batch: {why}")


def _no_val_batch(sources: str, urls: tuple[str, ...], min_views: int, consumers: int, epoch: int) -> None:
    """A validation epoch without one batch: training goes on, but the unseen-view metrics are missing, so say why
    (Lightning would only skip the loop without a word)."""
    why = why_no_batch(urls, min_views, max(1, consumers))
    log.warning("validation epoch %d of %r gave no batch, so no val/ metric this epoch: %s", epoch, sources, why)
