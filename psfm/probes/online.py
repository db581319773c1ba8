"""Online probing during pretraining: a cheap subset of ``psfm probe`` every N steps, logged like any metric.

Every ``every_steps`` optimizer steps (on global rank 0; the others wait at no barrier because
nothing here is collective) the current encoder, in eval mode and without gradients, encodes fixed
views of a few train and held-out scenes; a closed-form ridge on the pooled latents reads the
floor area, and disjoint view subsets of the held-out scenes must retrieve each other. Logged:
``probe/floor_area_mae_ratio`` (MAE over the train-mean predictor's MAE: 1 = reads nothing) and
``probe/retrieval_top1``. Neither touches the training RNG, data stream or weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightning as L
import torch

from psfm.probes import targets
from psfm.probes.facts import pooled
from psfm.probes.models import Ridge
from psfm.probes.retrieval import similarity as retrieval_similarity
from psfm.probes.retrieval import top_k
from psfm.probes.scenes import ProbeScenes, load_probe_scenes
from psfm.probes.sources import EncoderSource

log = logging.getLogger("psfm.probe")


@dataclass
class OnlineProbeConfig:
    """``every_steps: 0`` turns it off; scenes come from the datamodule's train and val sources."""

    every_steps: int = 0
    train_scenes: int = 256
    val_scenes: int = 64
    context_views: int = 3
    probe_views: int = 6


def online_metrics(source: EncoderSource, train: ProbeScenes, val: ProbeScenes) -> dict[str, float]:
    """Floor-area ridge error ratio (vs the train mean) and retrieval top-1s (plain, frame-aware) of one state."""
    train_features, val_features = source.features(train, frame_aware=False), source.features(val)
    metrics = {"probe/retrieval_top1": top_k(retrieval_similarity(val_features), 1)}
    for name, gallery in (
        ("shared_reference", val_features.shared_reference_tokens),  # docs/probes.md: the reference frame
        ("moved_reference", val_features.moved_reference_tokens),
    ):
        if gallery is not None:
            metrics[f"probe/retrieval_{name}_top1"] = top_k(retrieval_similarity(val_features, gallery), 1)
    try:
        area_train, area_val = targets.floor_area(train), targets.floor_area(val)
    except targets.MissingAnnotation:
        return metrics
    ridge = Ridge().fit(pooled(train_features.scene_tokens), area_train.values)
    error = (ridge.predict(pooled(val_features.scene_tokens)) - area_val.values).abs().mean()
    floor = (area_train.values.mean(0) - area_val.values).abs().mean()
    metrics["probe/floor_area_mae_ratio"] = float(error / floor.clamp_min(1e-9))
    return metrics


class OnlineProbe(L.Callback):
    def __init__(self, config: OnlineProbeConfig, train: str, val: str | None, image_size, input_kind="images"):
        self.config, self.sources, self.image_size = config, (train, val or train), tuple(image_size)
        self.input_kind = input_kind
        self.scenes: tuple[ProbeScenes, ProbeScenes] | None = None
        self.last_step = -1

    def _load(self) -> tuple[ProbeScenes, ProbeScenes]:
        if self.scenes is None:
            options = {"num_context": self.config.context_views, "num_views": self.config.probe_views}
            train, val = self.sources
            self.scenes = (
                load_probe_scenes(
                    train, self.image_size, **options, max_scenes=self.config.train_scenes, progress=False
                ),
                load_probe_scenes(val, self.image_size, **options, max_scenes=self.config.val_scenes, progress=False),
            )
        return self.scenes

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self.config.every_steps or step % self.config.every_steps or step == self.last_step or step == 0:
            return
        self.last_step = step
        if not trainer.is_global_zero:
            return
        encoder = module.model.encoder
        was_training = encoder.training
        try:
            encoder.eval()
            with torch.no_grad():
                source = EncoderSource(encoder, self.image_size, input_kind=self.input_kind)
                metrics = online_metrics(source, *self._load())
        finally:
            encoder.train(was_training)
        for name, value in metrics.items():
            module.log(name, value, rank_zero_only=True)
        log.info("online probe at step %d: %s", step, {k: round(v, 3) for k, v in metrics.items()})
