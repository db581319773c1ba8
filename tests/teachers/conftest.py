"""Fixtures shared by the teacher tests: a tiny student, small images, and a factory module in tmp_path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from psfm.encoders.backbones import BACKBONES, Backbone

FACTORY_MODULE = "psfm_test_teacher_factories"

FACTORY_SOURCE = '''
"""Teacher factories as a user would write them in their own package."""

import torch
from torch import nn


class ConvMapModel(nn.Module):
    """Feature-map layout [M, dim, H / stride, W / stride]; declares its dim."""

    def __init__(self, dim: int = 8, stride: int = 8):
        super().__init__()
        self.dim = dim
        self.conv = nn.Conv2d(3, dim, stride, stride)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, images):
        return self.norm(self.conv(images))


class PatchTokenModel(nn.Module):
    """Token layout [M, h * w, width] placed by a patch_size; no dim attribute, so it is probed."""

    def __init__(self, width: int = 12, patch_size: int = 16):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, width, patch_size, patch_size)

    def forward(self, images):
        return self.proj(images).flatten(2).transpose(1, 2)


class GridTokenModel(PatchTokenModel):
    """Token layout placed by a grid attribute set in forward (as VGGT-style models know their grid)."""

    def forward(self, images):
        tokens = super().forward(images)
        self.grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        return tokens


class UnplacedTokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 4, 16, 16)

    def forward(self, images):
        return self.proj(images).flatten(2).transpose(1, 2)


class PooledModel(nn.Module):
    dim = 4

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 4, 16, 16)

    def forward(self, images):
        return self.proj(images).mean(dim=(2, 3))


class CrossViewTokenModel(nn.Module):
    """Joint layout (a VGGT stand-in): scenes [B, V, 3, H, W] -> tokens [B, V, h * w, dim].

    Each view's tokens plus the mean over its scene's views, so a view's output depends on the
    other views of its scene and on nothing outside it.
    """

    dim = 4
    patch_size = 16

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, self.dim, self.patch_size, self.patch_size)

    def forward(self, scenes):
        tokens = self.proj(scenes.flatten(0, 1)).flatten(2).transpose(1, 2).unflatten(0, scenes.shape[:2])
        return tokens + tokens.mean(dim=1, keepdim=True)


def build_cross_view():
    return CrossViewTokenModel()


def build_map(**kwargs):
    return ConvMapModel(**kwargs)


def build_tokens(**kwargs):
    return PatchTokenModel(**kwargs)


def build_grid_tokens():
    return GridTokenModel()


def build_unplaced_tokens():
    return UnplacedTokenModel()


def build_pooled():
    return PooledModel()


def build_not_a_module():
    return 3


NOT_CALLABLE = 7
'''


@pytest.fixture
def student() -> Backbone:
    torch.manual_seed(0)
    return BACKBONES.build("vit_test")


@pytest.fixture
def images() -> torch.Tensor:
    """[2, 3, 64, 64] in [0, 1]: a 4 x 4 grid for the patch-16 student."""
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Import name of a fresh module of teacher factories written to tmp_path."""
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(textwrap.dedent(FACTORY_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(FACTORY_MODULE, None)
    yield FACTORY_MODULE
    sys.modules.pop(FACTORY_MODULE, None)
