"""Lightning glue of the data layer: make skipped samples a logged, cluster-wide number."""

from __future__ import annotations

import lightning as L

from psfm.types import MultiViewBatch


class SkippedSamplesLogger(L.Callback):
    """Log ``data/skipped``: bad samples dropped this epoch, summed over workers and ranks.

    Workers' counts arrive inside batches (``MultiViewBatch.skipped``); Lightning sums the per-step
    values over the epoch (``reduce_fx="sum"``) and over ranks (``sync_dist=True``).
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if isinstance(batch, MultiViewBatch):
            pl_module.log(
                "data/skipped",
                float(batch.skipped),
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=True,
                batch_size=batch.batch_size,
            )
