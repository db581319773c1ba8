"""The ``pixels`` teacher: each patch's own normalized RGB values, MAE's "norm_pix" target.

Needs no weights and no network, so it is the teacher to start with and the baseline every learnt
teacher must beat. Normalizing each patch by its own mean and spread (He et al., MAE, 2021) makes
the target about local structure (edges, texture) rather than brightness, which MAE found gives
better representations than raw pixels.

``normalize=False`` keeps the colours instead (one fixed affine map for every patch and image,
``4 · (rgb − 0.5)``, so smooth-L1 and cosine see colour differences at a useful scale and a grey
patch is not the zero vector's neighbour by accident): then the target says *what surface* a patch shows
(which wall, the floor, an object), so synthesizing an unseen view's colours needs the room's
layout relative to that camera. With a small ``patch_size`` it is a low-resolution colour image
of the view on the student's grid, a cheap geometry-rich complement to the texture target.
"""

from __future__ import annotations

import torch
from torch import nn

from psfm.teachers.base import register_teacher
from psfm.teachers.common import FrozenTeacher, resize_images

NORM_PIX_EPS = 1e-6
RAW_CENTRE, RAW_SCALE = 0.5, 4.0  # normalize=False: colours in [0, 1] -> [-2, 2]


class PixelTeacher(FrozenTeacher):
    """Per-patch normalized pixels on the student's patch grid.

    Each patch's 3·p·p values (ordered row, column, channel as in MAE's ``patchify``) have their
    mean subtracted and are divided by ``sqrt(var + 1e-6)``, with MAE's unbiased variance
    (divide by 3·p·p − 1).

    Args:
        patch_size: p, pixels per patch side; the image is resized to ``grid * p`` first when it
            is not already that size, so a patch always covers one student patch.
        normalize: MAE's per-patch normalization (True) or the colours themselves, ``4 · (rgb − 0.5)`` (False).
    """

    def __init__(self, patch_size: int, normalize: bool = True):
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        self.patch_size, self.normalize = patch_size, normalize
        self.dim = 3 * patch_size * patch_size
        self.freeze()

    def features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> [M, h * w, 3 * p * p] normalized patch pixels."""
        height, width = grid
        size = self.patch_size
        images = resize_images(images, (height * size, width * size))
        count = images.shape[0]
        patches = images.reshape(count, 3, height, size, width, size)  # M 3 h p w p
        patches = patches.permute(0, 2, 4, 3, 5, 1).reshape(count, height * width, self.dim)  # M N (p p 3)
        if not self.normalize:
            return (patches - RAW_CENTRE) * RAW_SCALE
        mean = patches.mean(dim=-1, keepdim=True)
        variance = patches.var(dim=-1, keepdim=True, correction=1)
        return (patches - mean) / (variance + NORM_PIX_EPS).sqrt()


@register_teacher("pixels")
def pixels_teacher(
    student: nn.Module | None = None, patch_size: int | None = None, normalize: bool = True
) -> PixelTeacher:
    """Normalized (or raw, ``normalize=False``) patch pixels; p is the student's patch size unless given."""
    if patch_size is None:
        if student is None or not hasattr(student, "patch_size"):
            raise ValueError("the pixels teacher needs patch_size=... or a student with a patch_size")
        patch_size = student.patch_size
    return PixelTeacher(int(patch_size), bool(normalize))
