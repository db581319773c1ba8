"""The teacher interface: frozen (or EMA) networks whose per-patch features the field decoder predicts.

A teacher maps images to one feature vector per patch of the *student's* patch grid, so the
decoder's ray tokens (one per patch) line up with targets one to one, whatever the teacher's own
resolution or stride. Teachers never receive gradients; the training loop may update an EMA
teacher between steps through ``update``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from psfm.registry import Registry

if TYPE_CHECKING:
    from psfm.types import MultiViewBatch


class Teacher(nn.Module):
    """Base class. Subclasses set ``dim`` and implement ``features``.

    Attributes:
        dim: feature channels per patch (Dt).
        joint_views: the teacher sees all views of a scene together (VGGT), so a view's features may
            depend on the scene's other views; such a teacher overrides ``scene_features``.
    """

    dim: int
    joint_views: bool = False

    def features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [M, 3, H, W] float in [0, 1] -> [M, h * w, Dt] for the patch grid ``grid = (h, w)``."""
        raise NotImplementedError

    def scene_features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [B, V, 3, H, W] in [0, 1] -> [B, V, h * w, Dt]; per-view teachers see each view alone."""
        return self.features(images.flatten(0, 1), grid).unflatten(0, tuple(images.shape[:2]))

    @torch.no_grad()
    def forward(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [M, 3, H, W] -> float32 [M, h * w, Dt], without gradients, in eval mode."""
        return self._frozen(self.features, images, grid)

    @torch.no_grad()
    def forward_views(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [B, V, 3, H, W] -> float32 [B, V, h * w, Dt]: how objectives ask for a batch's targets."""
        return self._frozen(self.scene_features, images, grid)

    def batch_targets(self, batch: MultiViewBatch, grid: tuple[int, int]) -> torch.Tensor:
        """The targets of a whole batch, [B, V, h * w, Dt]: what the objective calls.

        Image teachers read the clean (un-jittered) views of each scene; a teacher that reads other
        annotations (the ``depth`` teacher reads ground-truth depth) overrides this.
        """
        return self.forward_views(batch.teacher_images, grid)

    def _frozen(self, features, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return features(images, grid).float()
        finally:
            self.train(was_training)

    def update(self, student: nn.Module, step: int) -> None:  # noqa: B027 - optional hook
        """Called after every optimizer step with the student backbone; only the EMA teacher uses it."""


TEACHERS: Registry[Teacher] = Registry("teacher")
register_teacher = TEACHERS.register


def resize_to_grid(feature_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[M, Dt, h', w'] feature map -> [M, h * w, Dt] on the student grid (area average when shrinking)."""
    if tuple(feature_map.shape[-2:]) != tuple(grid):
        if feature_map.shape[-2] >= grid[0] and feature_map.shape[-1] >= grid[1]:
            feature_map = nn.functional.adaptive_avg_pool2d(feature_map, grid)
        else:
            feature_map = nn.functional.interpolate(feature_map, size=grid, mode="bilinear", align_corners=False)
    return feature_map.flatten(2).transpose(1, 2)
