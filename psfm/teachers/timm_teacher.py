"""The ``timm`` teacher: any frozen timm model with weights from a local file (DINOv2, CLIP, ConvNeXt ...).

Distilling a strong pretrained image model into the spatial encoder is what makes the encoder's
features semantic, not only geometric. timm builds nearly every public vision architecture, and
``psfm.checkpoints.load_into`` loads the user's local weight file safely, so no hub access is
needed. ViTs contribute their patch tokens, CNNs their last feature map; both are resampled onto
the student's patch grid.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from psfm.checkpoints import load_into
from psfm.teachers.base import register_teacher, resize_to_grid
from psfm.teachers.common import FrozenTeacher, as_size, resize_images, tokens_to_map

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

logger = logging.getLogger(__name__)


def create_timm_model(model_name: str, overrides: dict[str, Any]) -> nn.Module:
    """A headless timm model; ViTs get ``dynamic_img_size`` so they run at any multiple of their patch size."""
    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0]}*")[:5]
        raise KeyError(f"timm has no model {model_name!r} (similar: {', '.join(close) or 'none'})")
    try:
        return timm.create_model(model_name, pretrained=False, num_classes=0, dynamic_img_size=True, **overrides)
    except TypeError:  # CNNs and other models without dynamic_img_size
        return timm.create_model(model_name, pretrained=False, num_classes=0, **overrides)


class TimmTeacher(FrozenTeacher):
    """A frozen timm model whose last features, on the student's grid, are the targets.

    Args:
        model_name: any timm name (``vit_small_patch14_dinov2``, ``convnext_tiny``, ...).
        checkpoint: local weight file in timm's layout (a timm ``state_dict()``, the
            ``model.safetensors`` of a ``timm/`` hub repo); classifier heads are ignored.
            None leaves the teacher random, which only tests should do.
        img_size: resolution the teacher sees, int or (height, width); None = the model's own
            ``pretrained_cfg`` input size. ViTs need a multiple of their patch size.
        overrides: architecture kwargs for ``timm.create_model`` (``depth``, ``embed_dim``, or
            ``img_size`` when the checkpoint's position embedding was trained at another size).

    Attributes:
        dim: ``num_features`` of the model (the ViT embed dim, the CNN's last channel count).
    """

    def __init__(
        self,
        model_name: str,
        checkpoint: str | Path | None = None,
        img_size: int | tuple[int, int] | None = None,
        overrides: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.model = create_timm_model(model_name, dict(overrides or {}))
        if checkpoint is not None:
            load_into(self.model, checkpoint)
        else:
            logger.warning(
                "timm teacher %r has no checkpoint: a random frozen teacher teaches nothing useful "
                "(pass checkpoint=/path/to/weights)",
                model_name,
            )
        config = self.model.pretrained_cfg
        self.img_size = as_size(img_size if img_size is not None else tuple(config["input_size"][1:]))
        patch_embed = getattr(self.model, "patch_embed", None)
        self.patch_size = as_size(patch_embed.patch_size) if patch_embed is not None else None
        if self.patch_size and (self.img_size[0] % self.patch_size[0] or self.img_size[1] % self.patch_size[1]):
            raise ValueError(
                f"img_size {self.img_size} is not a multiple of {model_name}'s patch size {self.patch_size}"
            )
        self.num_prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 0))
        self.dim = int(self.model.num_features)
        self.register_buffer(
            "mean", torch.tensor(config.get("mean") or IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(config.get("std") or IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> the model's own feature map [M, Dt, h', w']."""
        images = resize_images(images, self.img_size)
        output = self.model.forward_features((images - self.mean) / self.std)
        if output.ndim == 3:  # ViT-like tokens [M, prefix + h' * w', Dt]
            if self.patch_size is None:
                raise ValueError(f"{type(self.model).__name__} returns tokens but has no patch_embed to grid them")
            own_grid = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
            return tokens_to_map(output[:, self.num_prefix_tokens :], own_grid)
        if output.ndim == 4 and output.shape[1] == self.dim:
            return output
        if output.ndim == 4 and output.shape[-1] == self.dim:  # channels-last models (Swin, ...)
            return output.permute(0, 3, 1, 2)
        raise ValueError(f"cannot read {tuple(output.shape)} features of {type(self.model).__name__} (dim {self.dim})")

    def features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1] -> [M, h * w, Dt]."""
        return resize_to_grid(self.feature_map(images), grid)


@register_teacher("timm")
def timm_teacher(
    model_name: str,
    student: nn.Module | None = None,
    checkpoint: str | Path | None = None,
    img_size: int | tuple[int, int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> TimmTeacher:
    """Any frozen timm model: ``teacher.name=timm teacher.model_name=... teacher.checkpoint=/path/weights``."""
    return TimmTeacher(model_name, checkpoint, img_size, overrides)
