"""``PretrainModel``: encoder + objective + teachers as one torch module, built from a ``ModelConfig``.

Torch only (no Lightning), so a script, a notebook or another trainer can pretrain with it too.
``build_encoder`` lives in ``psfm.encoders.build`` (``psfm.load`` needs it without the teachers) and is
re-exported here.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

import psfm.teachers  # noqa: F401 - registers the teachers
from psfm.encoders.build import build_encoder
from psfm.objectives.psfm import OBJECTIVES
from psfm.teachers.base import TEACHERS, Teacher
from psfm.training.config import ModelConfig, teacher_config
from psfm.types import MultiViewBatch

__all__ = ["PretrainModel", "build_encoder"]


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
