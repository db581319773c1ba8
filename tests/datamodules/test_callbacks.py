"""Skipped samples reach the logs as one number per epoch."""

from __future__ import annotations

import lightning as L
import torch

from psfm.datamodules.callbacks import SkippedSamplesLogger
from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.views import ViewSampling


class MeanColour(L.LightningModule):
    """The smallest model that consumes a MultiViewBatch."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(3))

    def training_step(self, batch, batch_idx):
        return (batch.images.mean(dim=(1, 3, 4)) - self.bias).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_skipped_samples_are_logged_per_epoch(scene_shards, tmp_path):
    directory, _ = scene_shards
    broken = sorted(directory.glob("*.tar"))[1]
    broken.write_bytes(broken.read_bytes()[:2000])  # cut mid-sample: this shard's scenes are lost
    config = DataModuleConfig(
        train=str(directory), val=None, batch_size=2, num_workers=0, image_size=[16, 16], resampled=False, augment=True
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
    trainer.fit(MeanColour(), datamodule=datamodule)
    skipped = trainer.callback_metrics["data/skipped"].item()
    assert skipped >= 1 and skipped == datamodule.skipped_total
