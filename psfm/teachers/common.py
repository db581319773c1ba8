"""Pieces every teacher shares: a frozen base class and the resizes that align teachers with the student.

Teachers see the same [0, 1] images as the student but often want another resolution (a CNN's
224 px, the student grid times a pixel patch), and their outputs come as token lists or feature
maps on their own grids. These helpers do the two conversions once, so each teacher file only
says what is particular to it.
"""

from __future__ import annotations

import torch
from torch import nn

from psfm.teachers.base import Teacher


class FrozenTeacher(Teacher):
    """A teacher that is never trained by gradients: parameters frozen, every submodule in eval mode forever.

    ``train(True)`` from a surrounding LightningModule would otherwise switch BatchNorm to batch
    statistics (and update its running stats) or turn dropout on, silently changing the targets.
    """

    def freeze(self) -> FrozenTeacher:
        """Stop gradients to every parameter and switch to eval mode; returns ``self`` for chaining."""
        self.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)


def as_size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """An int or (height, width) pair -> (height, width); config files give lists."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """images: [M, 3, H, W] -> [M, 3, *size]; antialiased bilinear, untouched when already that size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Row-major tokens [M, h' * w', D] on ``grid = (h', w')`` -> feature map [M, D, h', w'] for ``resize_to_grid``."""
    count, num_tokens, dim = tokens.shape
    if num_tokens != grid[0] * grid[1]:
        raise ValueError(f"{num_tokens} tokens do not fill a {grid[0]}x{grid[1]} grid")
    return tokens.transpose(1, 2).reshape(count, dim, grid[0], grid[1])  # M D h' w'
