"""Per-view backbones: images -> patch tokens on a patch grid, behind one registry.

Any timm ViT name works (random init, or a local checkpoint path). Inputs are always [0, 1] RGB;
each backbone applies its own normalization, so teachers and backbones can share images.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn

from psfm.checkpoints import load_into
from psfm.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PatchTokens:
    """tokens: [M, N, Db] for M images, N = h * w patches in row-major order; grid = (h, w)."""

    tokens: torch.Tensor
    grid: tuple[int, int]


class Backbone(nn.Module):
    """Base class: ``dim`` (Db) and ``patch_size`` (pixels per patch side) are set by subclasses."""

    dim: int
    patch_size: int

    def forward(self, images: torch.Tensor) -> PatchTokens:
        """images: [M, 3, H, W] float in [0, 1], H and W multiples of ``patch_size``."""
        raise NotImplementedError


BACKBONES: Registry[Backbone] = Registry("backbone")
register_backbone = BACKBONES.register


class TimmViT(Backbone):
    """A timm vision transformer used as a per-view patch-token extractor (prefix tokens dropped).

    Args:
        model_name: any timm ViT name (``vit_small_patch16_224``, ``vit_base_patch14_dinov2`` ...).
        img_size: size the position embeddings are built for; other sizes are interpolated
            (``dynamic_img_size``), so one model serves every aspect ratio.
        checkpoint: local weight file (timm/torch/safetensors); None = random init.
        frozen: no gradients, eval mode forever.
        overrides: architecture kwargs passed to timm (``depth``, ``embed_dim``, ``num_heads`` ...).
    """

    def __init__(
        self,
        model_name: str = "vit_small_patch16_224",
        img_size: int | tuple[int, int] = 224,
        checkpoint: str | None = None,
        frozen: bool = False,
        **overrides,
    ):
        super().__init__()
        if model_name not in timm.list_models():
            raise KeyError(f"timm has no model {model_name!r}")
        self.model = timm.create_model(
            model_name, pretrained=False, img_size=img_size, num_classes=0, dynamic_img_size=True, **overrides
        )
        if checkpoint:
            load_into(self.model, checkpoint)
        self.dim = self.model.embed_dim
        self.patch_size = self.model.patch_embed.patch_size[0]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> TimmViT:
        super().train(mode and not self.frozen)
        return self

    def forward(self, images: torch.Tensor) -> PatchTokens:
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {self.patch_size}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self.model.forward_features((images - self.mean) / self.std)
        return PatchTokens(
            tokens[:, self.model.num_prefix_tokens :], (height // self.patch_size, width // self.patch_size)
        )


@register_backbone("timm")
def timm_backbone(**kwargs) -> TimmViT:
    """Any timm ViT: ``backbone.name=timm backbone.model_name=vit_base_patch14_dinov2 backbone.checkpoint=...``."""
    return TimmViT(**kwargs)


@register_backbone("vit_test")
def vit_test(img_size: int | tuple[int, int] = 64, **kwargs) -> TimmViT:
    """2 layers, 64 wide, patch 16: for tests and the CPU quickstart."""
    arch = {"depth": 2, "embed_dim": 64, "num_heads": 2, **kwargs}
    return TimmViT("vit_small_patch16_224", img_size=img_size, **arch)


@register_backbone("vit_tiny")
def vit_tiny(img_size: int | tuple[int, int] = 128, **kwargs) -> TimmViT:
    """ViT-Tiny shape (192 wide, 3 heads) at 4 layers, patch 16: the ``world_tiny`` CPU run."""
    arch = {"depth": 4, "embed_dim": 192, "num_heads": 3, **kwargs}
    return TimmViT("vit_tiny_patch16_224", img_size=img_size, **arch)
