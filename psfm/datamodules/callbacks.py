"""Lightning glue of the data layer: make skipped scenes a logged, cluster-wide number, checked against the manifest."""

from __future__ import annotations

import logging

import lightning as L
import torch

from psfm.types import MultiViewBatch

log = logging.getLogger("psfm.data")


class SkippedSamplesLogger(L.Callback):
    """Log ``data/skipped``, scenes dropped this epoch, and ``data/skipped_total``, since the run began.

    Both are summed over workers and ranks. Workers' counts arrive inside batches (``MultiViewBatch.skipped``);
    Lightning sums the per-step values over the epoch (``reduce_fx="sum"``) and over ranks (``sync_dist=True``).

    At the end of a finite epoch read to its end, the scenes read plus those skipped must be what the
    manifests list: one line says so when they differ, since a difference is data lost without a count
    (a skip in a loader worker that never produced a batch, or a shard holding other scenes than listed).
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

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "skipped_total"):
            return
        total = _sum_over_ranks(trainer, pl_module, [datamodule.skipped_total])[0]
        pl_module.log("data/skipped_total", float(total), on_step=False, on_epoch=True, rank_zero_only=True)
        account = datamodule.train_epoch_account()
        if account is not None:  # None on every rank alike: a collective is safe
            self._compare_with_manifest(trainer, pl_module, *account)

    @staticmethod
    def _compare_with_manifest(
        trainer: L.Trainer, pl_module: L.LightningModule, read: int, skipped: int, complete: bool, manifest: int
    ) -> None:
        read, skipped, complete_ranks = _sum_over_ranks(trainer, pl_module, [read, skipped, int(complete)])
        if complete_ranks < trainer.world_size or read + skipped == manifest or not trainer.is_global_zero:
            return  # an epoch cut short (max_steps) read only part of the manifest
        log.warning(
            "training epoch %d read %d scenes and skipped %d, but the manifest lists %d: %d scenes %s",
            trainer.current_epoch,
            read,
            skipped,
            manifest,
            abs(manifest - read - skipped),
            "unaccounted for (see the 'skipped' warnings of the loader workers)"
            if read + skipped < manifest
            else "more than listed (a shard replaced after its manifest was written?)",
        )


def _sum_over_ranks(trainer: L.Trainer, pl_module: L.LightningModule, values: list[int]) -> list[int]:
    counts = torch.tensor(values, dtype=torch.long, device=pl_module.device)
    return [int(value) for value in trainer.strategy.reduce(counts, reduce_op="sum")]
