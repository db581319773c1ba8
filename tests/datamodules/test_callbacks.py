"""Skipped samples reach the logs as one number per epoch."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

from psfm.datamodules.callbacks import SkippedSamplesLogger
from psfm.datamodules.datamodule import SceneDataModule
from psfm.datamodules.skips import SKIPS
from tests.conftest import write_scenes_with_views
from tests.datamodules.shard_surgery import cut_before_scene, finite_config


class MeanColour(L.LightningModule):
    """The smallest model that consumes a MultiViewBatch."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(3))

    def training_step(self, batch, batch_idx):
        return (batch.images.mean(dim=(1, 3, 4)) - self.bias).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_one_epoch(directory: Path, tmp_path: Path, augment: bool = False) -> tuple[L.Trainer, SceneDataModule]:
    """A finite epoch of batches of 2 through ``SkippedSamplesLogger``."""
    config = finite_config(directory, batch_size=2, max_views=3, augment=augment)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[SkippedSamplesLogger()],
        default_root_dir=tmp_path,
    )
    datamodule = SceneDataModule(config)
    SKIPS.drain()  # this process's counter may hold skips of earlier tests
    trainer.fit(MeanColour(), datamodule=datamodule)
    return trainer, datamodule


def epoch_lines_with_one_scene_unlisted(directory, tmp_path, caplog) -> list[str]:
    """The 'training epoch' warnings of one epoch over ``directory`` once its manifest lists one scene fewer."""
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["shards"][0]["num_samples"] -= 1
    manifest["num_samples"] -= 1
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="psfm.data"):
        fit_one_epoch(directory, tmp_path)
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("training epoch")]


def test_a_finite_epoch_that_reads_more_than_the_manifest_lists_says_so(scene_shards, tmp_path, caplog):
    """``pretrain`` never compared what it read with the manifest; here a shard holds a scene it does not list."""
    directory, keys = scene_shards
    lines = epoch_lines_with_one_scene_unlisted(directory, tmp_path, caplog)
    assert lines == [
        "training epoch 0 read 12 scenes and skipped 0, but the manifest lists 11: 1 scenes more than listed "
        "(a shard replaced after its manifest was written?)"
    ]


def test_an_epoch_with_skips_that_reads_more_than_listed_is_not_called_a_loss(tmp_path, caplog):
    """Read 8 and skipped 4 of 12 scenes whose manifest lists 11: one scene more than listed, not a loss.

    Which of the two the line says sends a person to a different culprit (a replaced shard, or lost data).
    (mutation testing: ``read - skipped < manifest`` in place of ``read + skipped`` survived.)
    """
    views = [4, 1, 4, 4, 1, 4, 1, 4, 4, 4, 1, 4]  # four scenes below min_views=2, skipped and counted
    directory = tmp_path / "shards"
    write_scenes_with_views(directory, views)
    lines = epoch_lines_with_one_scene_unlisted(directory, tmp_path, caplog)
    assert lines == [
        "training epoch 0 read 8 scenes and skipped 4, but the manifest lists 11: 1 scenes more than listed "
        "(a shard replaced after its manifest was written?)"
    ]


def test_a_finite_epoch_with_every_loss_counted_matches_the_manifest(scene_shards, tmp_path, caplog):
    """A shard cut short: the scenes it lost are counted in the epoch's batches, and the epoch matches the manifest."""
    directory, keys = scene_shards
    cut_before_scene(directory / "shard-000003.tar", 1)
    with caplog.at_level("WARNING", logger="psfm.data"):
        trainer, _ = fit_one_epoch(directory, tmp_path)
    assert trainer.callback_metrics["data/skipped"].item() == 2
    assert not [record for record in caplog.records if "but the manifest lists" in record.getMessage()]


def test_skipped_samples_are_logged_per_epoch(tmp_path):
    """``data/skipped`` is the number of scenes actually skipped, known here by construction.

    Comparing it with ``SceneDataModule.skipped_total`` alone proves little: both sum the same ``batch.skipped``.
    """
    views = [4, 1, 4, 4, 1, 4, 1, 4, 4, 4, 1, 4]  # four scenes below min_views=2, each skipped once
    write_scenes_with_views(tmp_path / "shards", views)
    trainer, datamodule = fit_one_epoch(tmp_path / "shards", tmp_path, augment=True)
    assert trainer.global_step == 4  # 8 good scenes in batches of 2
    assert trainer.callback_metrics["data/skipped"].item() == 4
    assert trainer.callback_metrics["data/skipped_total"].item() == 4
    assert datamodule.skipped_total == 4
