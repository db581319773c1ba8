"""The ``module`` teacher: the hook for any model the user has locally (VGGT, a private DINO, ...).

psfm cannot ship or download every 3D/vision foundation model, and many (VGGT, DUSt3R) are not
timm models. Instead the user names a factory by import path, ``"my_package.my_module:build_teacher"``,
that returns an ``nn.Module`` mapping [0, 1] images to features; this teacher imports it, freezes it
and lines its output up with the student's patch grid. See docs/teachers.md for a full example.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from psfm.factories import import_factory
from psfm.teachers.base import register_teacher, resize_to_grid
from psfm.teachers.common import FrozenTeacher, as_size, resize_images, tokens_to_map


class ModuleTeacher(FrozenTeacher):
    """A user's frozen ``nn.Module`` as a teacher.

    The module maps images [M, 3, H, W] in [0, 1] (it normalizes them itself) to either a feature
    map [M, Dt, h', w'] or row-major tokens [M, h' * w', Dt] (prefix tokens already dropped). For
    tokens it must say where they sit: an attribute ``grid = (h', w')`` (read after each call, so
    it may be set in ``forward``) or ``patch_size`` (then h' = H / p, w' = W / p).

    With ``joint_views`` the module sees every view of a scene at once, as VGGT must (its features
    of a view depend on the scene's other views and on which view is first): images
    [B, V, 3, H, W] -> [B, V, Dt, h', w'] or [B, V, h' * w', Dt]. Called on single images, a
    joint module gets each as a one-view scene [M, 1, 3, H, W].

    Args:
        model: the module.
        img_size: resize images to this (int or (height, width)) before the module; None = as given.
        probe_size: side of the zero image used to infer Dt when the module has no int ``dim``.
        source: where the module came from, for error messages.
        joint_views: call the module once per batch of scenes, [B, V, 3, H, W].
    """

    def __init__(
        self,
        model: nn.Module,
        img_size: int | tuple[int, int] | None = None,
        probe_size: int = 224,
        source: str = "module",
        joint_views: bool = False,
    ):
        super().__init__()
        self.model = model
        self.img_size = as_size(img_size) if img_size is not None else None
        self.source = source
        self.joint_views = joint_views
        self.freeze()
        dim = getattr(model, "dim", None)
        if not isinstance(dim, int) or isinstance(dim, bool):
            first = next(model.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
            with torch.no_grad():
                dim = self.feature_map(torch.zeros(1, 3, probe_size, probe_size, device=device)).shape[1]
        if dim < 1:
            raise ValueError(f"{source}: feature dim must be positive, got {dim}")
        self.dim = int(dim)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> the module's features as a map [M, Dt, h', w']."""
        if self.joint_views:
            return self.scene_feature_map(images[:, None])  # each image its own one-view scene
        if self.img_size is not None:
            images = resize_images(images, self.img_size)
        output = self.model(images)
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"{self.source} returned a {type(output).__name__}; it must return one tensor")
        if output.ndim not in (3, 4) or output.shape[0] != images.shape[0]:
            raise ValueError(
                f"{self.source} returned shape {tuple(output.shape)} for {images.shape[0]} images; expected a "
                "feature map [M, Dt, h', w'] or tokens [M, h' * w', Dt]"
            )
        return self._as_map(output, tuple(images.shape[-2:]))

    def scene_feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, V, 3, H, W] in [0, 1] -> [B * V, Dt, h', w'] from one call of a ``joint_views`` module."""
        scenes = tuple(images.shape[:2])
        if self.img_size is not None:
            images = resize_images(images.flatten(0, 1), self.img_size).unflatten(0, scenes)
        output = self.model(images)
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"{self.source} returned a {type(output).__name__}; it must return one tensor")
        if output.ndim not in (4, 5) or tuple(output.shape[:2]) != scenes:
            raise ValueError(
                f"{self.source} (joint_views) returned shape {tuple(output.shape)} for {scenes[0]} scenes of "
                f"{scenes[1]} views; expected a feature map [B, V, Dt, h', w'] or tokens [B, V, h' * w', Dt]"
            )
        return self._as_map(output.flatten(0, 1), tuple(images.shape[-2:]))

    def _as_map(self, output: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """The module's per-view output, a map [M, Dt, h', w'] or tokens [M, h' * w', Dt] -> a map."""
        if output.ndim == 4:
            return output
        grid = getattr(self.model, "grid", None)
        patch_size = getattr(self.model, "patch_size", None)
        if grid is None and patch_size is not None:
            patch_height, patch_width = as_size(patch_size)
            grid = (image_size[0] // patch_height, image_size[1] // patch_width)
        if grid is None:
            raise ValueError(
                f"{self.source} returns tokens {tuple(output.shape)}; give the module a `grid` (h', w') or a "
                "`patch_size` attribute so they can be placed on the image"
            )
        try:
            return tokens_to_map(output, as_size(grid))
        except ValueError as error:
            raise ValueError(f"{self.source}: {error} (drop class/register tokens before returning)") from None

    def features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> [M, h * w, Dt]."""
        return self._on_grid(self.feature_map(images), grid)

    def scene_features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [B, V, 3, H, W] in [0, 1] -> [B, V, h * w, Dt]; one module call per batch when ``joint_views``."""
        if not self.joint_views:
            return super().scene_features(images, grid)
        return self._on_grid(self.scene_feature_map(images), grid).unflatten(0, tuple(images.shape[:2]))

    def _on_grid(self, feature_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if feature_map.shape[1] != self.dim:
            raise ValueError(f"{self.source} gave {feature_map.shape[1]} channels, but its dim is {self.dim}")
        return resize_to_grid(feature_map, grid)


@register_teacher("module")
def module_teacher(
    factory: str,
    student: nn.Module | None = None,
    kwargs: dict[str, Any] | None = None,
    img_size: int | tuple[int, int] | None = None,
    probe_size: int = 224,
    joint_views: bool = False,
) -> ModuleTeacher:
    """``factory(**kwargs)`` (an import path string, ``"pkg.mod:fn"``) built, frozen and grid-aligned.

    ``joint_views: true`` hands the module whole scenes [B, V, 3, H, W] (VGGT), see ``ModuleTeacher``.
    """
    build = import_factory(factory)
    model = build(**(kwargs or {}))
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory {factory!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return ModuleTeacher(model, img_size, probe_size, source=factory, joint_views=joint_views)
