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
from psfm.factories import import_factory
from psfm.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PatchTokens:
    """tokens: [M, N, Db] for M images, N = h * w patches in row-major order; grid = (h, w)."""

    tokens: torch.Tensor
    grid: tuple[int, int]


class Backbone(nn.Module):
    """Base class: ``dim`` (Db) and ``patch_size`` (pixels per patch side) are set by subclasses.

    ``joint_views`` backbones (VGGT) see all views of a scene together: ``SpatialEncoder`` then calls
    ``forward_views`` with whole scenes instead of ``forward`` with single images.
    """

    dim: int
    patch_size: int
    joint_views: bool = False

    def forward(self, images: torch.Tensor) -> PatchTokens:
        """images: [M, 3, H, W] float in [0, 1], H and W multiples of ``patch_size``."""
        raise NotImplementedError

    def forward_views(self, images: torch.Tensor) -> PatchTokens:
        """images: [B, V, 3, H, W] in [0, 1] -> tokens [B, V, N, Db]; per view unless ``joint_views``."""
        batch, views = images.shape[:2]
        out = self(images.flatten(0, 1))
        return PatchTokens(out.tokens.unflatten(0, (batch, views)), out.grid)


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


class ModuleBackbone(Backbone):
    """A user's own network (e.g. a frozen VGGT aggregator) behind the backbone interface.

    ``factory`` ("package.module:function") is called with ``kwargs`` and must return an
    ``nn.Module`` with int attributes ``dim`` and ``patch_size`` whose forward maps images
    [M, 3, H, W] in [0, 1] to patch tokens [M, (H / p) * (W / p), dim] in row-major order.
    With ``joint_views`` it maps whole scenes instead, [B, V, 3, H, W] -> [B, V, (H / p) * (W / p), dim]:
    VGGT must see a scene's views together (and marks the first as the reference frame); a single
    image is then passed as a one-view scene.
    """

    def __init__(
        self, factory: str, frozen: bool = True, kwargs: dict | None = None, joint_views: bool = False, **_ignored
    ):
        super().__init__()
        self.net = import_factory(factory)(**dict(kwargs or {}))
        missing = [name for name in ("dim", "patch_size") if not isinstance(getattr(self.net, name, None), int)]
        if missing:
            raise ValueError(f"backbone factory {factory!r} returned a module without int attribute(s) {missing}")
        self.dim, self.patch_size, self.frozen = self.net.dim, self.net.patch_size, frozen
        self.joint_views = joint_views
        if frozen:
            self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> ModuleBackbone:
        super().train(mode and not self.frozen)
        return self

    def forward(self, images: torch.Tensor) -> PatchTokens:
        if self.joint_views:  # each image its own one-view scene
            out = self.forward_views(images[:, None])
            return PatchTokens(out.tokens[:, 0], out.grid)
        return PatchTokens(self._run(images, images.shape[:1]), self._grid(images))

    def forward_views(self, images: torch.Tensor) -> PatchTokens:
        """images: [B, V, 3, H, W] -> tokens [B, V, N, Db], in one call of the module when ``joint_views``."""
        if not self.joint_views:
            return super().forward_views(images)
        return PatchTokens(self._run(images, images.shape[:2]), self._grid(images))

    def _grid(self, images: torch.Tensor) -> tuple[int, int]:
        return images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size

    def _run(self, images: torch.Tensor, leading: torch.Size) -> torch.Tensor:
        """The module's tokens, checked to be [*leading, N, Db] (leading: (M,) per view, (B, V) joint)."""
        grid = self._grid(images)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self.net(images)
        expected = (*leading, grid[0] * grid[1])
        if tuple(tokens.shape[:-1]) != expected:
            layout = "[B, V, N, D]" if self.joint_views else "[M, N, D]"
            raise ValueError(
                f"backbone module returned {tuple(tokens.shape)}, expected {layout} with leading shape {expected}"
            )
        return tokens


@register_backbone("module")
def module_backbone(
    factory: str, frozen: bool = True, kwargs: dict | None = None, joint_views: bool = False, **ignored
) -> ModuleBackbone:
    """``backbone.name=module backbone.overrides={factory: "my_pkg.vggt:build", kwargs: {...}, joint_views: true}``."""
    return ModuleBackbone(factory, frozen, kwargs, joint_views)
