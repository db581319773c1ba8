"""The ``depth`` teacher: each patch's ground-truth depth, a privileged geometry target.

Spa3R's teacher is VGGT, a network whose features *are* geometry (it was trained to output depth
and point maps). On data that carries metric depth (the embedded procedural world, ScanNet-style
captures) the ground truth itself can play that part: to synthesize an unseen view's depth from
a few context views, the latents must hold where the walls, floor and objects are relative to
the reference camera, which is exactly the spatial knowledge PSFM is meant to put in them.

It is *privileged*: it reads an annotation, not the images, so an encoder trained with it was
supervised with depth. Probes that read depth back from such an encoder are then measuring the
training target; the scene facts (room size, counts, view invariance) are not, so report them as
the evidence. Batches need ``datamodule.load_depth=true``.

Each patch becomes p × p sub-patch values ``scale · log(1 + depth / unit)``, in row-major order:
logarithmic so near and far errors weigh alike, positive so the objective's cosine term stays
defined. ``scale`` sets the target's pull inside smooth-L1; at 4 (where a 25 % error is about 1)
it took most of the one global gradient norm on ``world_small`` (3-6 against the image teachers'
≈ 1 over the first 1000 steps, all clipped to 1) and every teacher learnt slower, so it is 1.

Pixels without depth (0) are left out of their sub-patch's mean; a sub-patch with none takes its
patch's mean, a patch with none the value 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from psfm.objectives.losses import masked_mean_pool
from psfm.teachers.base import register_teacher
from psfm.teachers.common import FrozenTeacher

if TYPE_CHECKING:
    from psfm.types import MultiViewBatch


class DepthTeacher(FrozenTeacher):
    """Per-patch log-depth at p × p sub-patches, from ``MultiViewBatch.depth``.

    Args:
        patch_size: p, sub-patches per patch side (Dt = p²).
        unit: metres per unit inside the log, ``log(1 + depth / unit)``.
        scale: factor on the log, which sets this target's weight inside smooth-L1.
    """

    def __init__(self, patch_size: int = 2, unit: float = 1.0, scale: float = 1.0):
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        if unit <= 0:
            raise ValueError(f"unit must be positive metres, got {unit}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.patch_size, self.unit, self.scale = int(patch_size), float(unit), float(scale)
        self.dim = self.patch_size**2
        self.freeze()

    def depth_features(self, depth: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """depth [M, 1, H, W] metres (0 = unknown) -> [M, h * w, p²] targets on the student grid."""
        height, width = grid
        size = self.patch_size
        depth = depth.float()
        fine, fine_share = masked_mean_pool(depth, (height * size, width * size))  # M 1 hp wp
        coarse, coarse_share = masked_mean_pool(depth, (height, width))  # M 1 h w
        coarse = torch.where(coarse_share > 0, coarse, torch.zeros_like(coarse))
        fallback = coarse.repeat_interleave(size, dim=-2).repeat_interleave(size, dim=-1)
        fine = torch.where(fine_share > 0, fine, fallback)
        values = self.scale * torch.log1p(fine / self.unit)
        count = values.shape[0]
        patches = values.reshape(count, height, size, width, size).permute(0, 1, 3, 2, 4)  # M h w p p
        return patches.reshape(count, height * width, self.dim)

    def features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        raise ValueError(
            "the depth teacher reads ground-truth depth, not images: it needs batches with depth "
            "(datamodule.load_depth=true) and is called through batch_targets"
        )

    @torch.no_grad()
    def batch_targets(self, batch: MultiViewBatch, grid: tuple[int, int]) -> torch.Tensor:
        """[B, V, h * w, p²] from ``batch.depth`` [B, V, 1, H, W]."""
        if batch.depth is None:
            raise ValueError(
                "the depth teacher needs depth maps, but the batch has none: set datamodule.load_depth=true "
                "and use shards whose views carry depth"
            )
        return self.depth_features(batch.depth.flatten(0, 1), grid).unflatten(0, tuple(batch.depth.shape[:2]))


@register_teacher("depth")
def depth_teacher(
    student: nn.Module | None = None, patch_size: int = 2, unit: float = 1.0, scale: float = 1.0
) -> DepthTeacher:
    """Ground-truth log-depth per sub-patch (privileged: needs depth in the shards)."""
    return DepthTeacher(patch_size, unit, scale)
