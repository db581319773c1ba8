"""``PretrainModel``: encoder + objective + teachers as one torch module, built from a ``ModelConfig``.

Torch only (no Lightning), so a script, a notebook or another trainer can pretrain with it too.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

import psfm.teachers  # noqa: F401 - registers the teachers
from psfm.encoders.backbones import BACKBONES
from psfm.encoders.latent import LatentEncoder
from psfm.encoders.spatial import SpatialEncoder
from psfm.objectives.psfm import OBJECTIVES
from psfm.teachers.base import TEACHERS, Teacher
from psfm.training.config import BackboneConfig, EncoderConfig, ModelConfig, teacher_config
from psfm.types import MultiViewBatch


def build_encoder(backbone: BackboneConfig, encoder: EncoderConfig, attention: str = "auto") -> SpatialEncoder:
    """The network PSFM pretrains and ``psfm.load`` rebuilds: backbone + latent encoder."""
    if backbone.require_checkpoint and not backbone.checkpoint:
        raise ValueError(
            "model.backbone.checkpoint is required by this experiment (a frozen backbone at random init "
            "teaches nothing): pass model.backbone.checkpoint=/path/to/weights"
        )
    options = {"img_size": backbone.img_size, "checkpoint": backbone.checkpoint, "frozen": backbone.frozen}
    if backbone.model_name is not None:
        options["model_name"] = backbone.model_name
    if backbone.name == "module":  # the user's factory takes its own kwargs (in overrides)
        options = {"frozen": backbone.frozen}
    net = BACKBONES.build(backbone.name, **options, **backbone.overrides)
    kwargs = {key: value for key, value in asdict(encoder).items() if key != "trainable"}
    latent = LatentEncoder(in_dim=net.dim, backend=attention, **kwargs)
    spatial = SpatialEncoder(net, latent)
    if not encoder.trainable:
        spatial.requires_grad_(False)
    return spatial


class PretrainModel(nn.Module):
    """``forward(batch) -> {"loss": ..., "<teacher>/loss": ...}``.

    Teachers are frozen and never among ``trainable_parameters``.
    """

    def __init__(self, config: ModelConfig, total_steps: int | None = None):
        super().__init__()
        if not config.teachers:
            raise ValueError("model.teachers is empty: add one, e.g. +model.teachers.pixels.name=pixels")
        teacher_configs = {key: teacher_config(key, value) for key, value in config.teachers.items()}
        self.encoder = build_encoder(config.backbone, config.encoder, config.attention)
        teachers = {}
        for key, teacher in teacher_configs.items():
            options = dict(teacher.options)
            if teacher.name == "ema" and total_steps is not None:
                options.setdefault("total_steps", total_steps)
            teachers[key] = TEACHERS.build(teacher.name, student=self.encoder.backbone, **options)
        self.teachers: nn.ModuleDict[str, Teacher] = nn.ModuleDict(teachers)
        objective = config.objective
        decoder = {**asdict(objective.decoder), "backend": config.attention}
        self.objective = OBJECTIVES.build(
            objective.name,
            dim=config.encoder.dim,
            teacher_dims={key: teacher.dim for key, teacher in teachers.items()},
            decoder=decoder,
            loss_views=objective.loss_views,
            teacher_weights={key: teacher.weight for key, teacher in teacher_configs.items()},
            l1_weight=objective.l1_weight,
            cosine_weight=objective.cosine_weight,
            target_norm=objective.target_norm,
            depth_probe=objective.depth_probe,
            context_input=objective.context_input,
        )

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [
            (name, param)
            for name, param in self.named_parameters()
            if param.requires_grad and not name.startswith("teachers.")
        ]

    def clip_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters in groups whose gradient norms are clipped apart.

        The depth probe learns from detached features, so it is a passenger: its gradients (large
        early on, when it is far from the depth scale) must not scale down the encoder's and
        decoder's through one shared global norm.
        """
        groups: dict[str, list[nn.Parameter]] = {"model": [], "depth_probe": []}
        for name, param in self.trainable_parameters():
            groups["depth_probe" if name.startswith("objective.depth_probe.") else "model"].append(param)
        return {key: params for key, params in groups.items() if params}

    def forward(self, batch: MultiViewBatch) -> dict[str, torch.Tensor]:
        return self.objective(self.encoder, batch, dict(self.teachers.items()))

    @torch.no_grad()
    def update_teachers(self, step: int) -> None:
        """Once per optimizer step that changed the weights: EMA teachers follow the student backbone.

        Not per micro-batch (under accumulation over k that would make the momentum m^k) and not
        after a step skipped for a non-finite loss; ``PretrainModule`` decides when to call it.
        """
        for teacher in self.teachers.values():
            teacher.update(self.encoder.backbone, step)
