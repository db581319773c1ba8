"""Skipped samples reach the logs as one number per epoch."""

from __future__ import annotations

import lightning as L
import torch

from psfm.datamodules.callbacks import SkippedSamplesLogger
from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.skips import SKIPS
from psfm.datamodules.views import ViewSampling
from tests.conftest import write_scenes_with_views


class MeanColour(L.LightningModule):
    """The smallest model that consumes a MultiViewBatch."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(3))

    def training_step(self, batch, batch_idx):
        return (batch.images.mean(dim=(1, 3, 4)) - self.bias).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_skipped_samples_are_logged_per_epoch(tmp_path):
    """``data/skipped`` is the number of scenes actually skipped, known here by construction.

    Comparing it with ``SceneDataModule.skipped_total`` alone proves little: both sum the same ``batch.skipped``.
    """
    views = [4, 1, 4, 4, 1, 4, 1, 4, 4, 4, 1, 4]  # four scenes below min_views=2, each skipped once
    write_scenes_with_views(tmp_path / "shards", views)
    config = DataModuleConfig(
        train=str(tmp_path / "shards"),
        val=None,
        batch_size=2,
        num_workers=0,
        image_size=[16, 16],
        resampled=False,
        augment=True,
    )
    config.views = ViewSampling(2, 3)
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
    assert trainer.global_step == 4  # 8 good scenes in batches of 2
    assert trainer.callback_metrics["data/skipped"].item() == 4
    assert datamodule.skipped_total == 4
