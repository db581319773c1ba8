"""Per-view geometric fitting (resize + crop with matching intrinsics) and photometric augmentation."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image


def fit_view(
    rgb: np.ndarray,
    intrinsics: np.ndarray,
    out_hw: tuple[int, int],
    crop: str = "center",
    rng: random.Random | None = None,
    depth: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    rgb_filter: int = Image.BILINEAR,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Scale a view to cover ``out_hw`` (aspect kept), then crop; intrinsics follow every step.

    A pixel's continuous coordinate ``u`` becomes ``u * s - x0`` (corner-origin convention, see
    ``psfm.geometry``), so ``fx, cx`` scale by ``s`` and ``cx`` shifts by the crop offset.
    Depth and masks are resampled with nearest neighbour so no value is invented at edges.

    Args:
        rgb: [H, W, 3] uint8.
        intrinsics: [3, 3].
        out_hw: (H', W') output size.
        crop: ``center`` or ``random`` (needs ``rng``; a geometric augmentation that stays consistent).
        rgb_filter: PIL filter for the colours (converters shrink large photos with ``Image.BOX``).

    Returns:
        rgb [H', W', 3], intrinsics [3, 3], depth [H', W'] or None, mask [H', W'] or None.
    """
    height, width = rgb.shape[:2]
    out_h, out_w = out_hw
    intrinsics = np.asarray(intrinsics, dtype=np.float64).copy()
    if (height, width) == (out_h, out_w):
        return rgb, intrinsics, depth, mask
    scale = max(out_h / height, out_w / width)
    new_w, new_h = max(out_w, round(width * scale)), max(out_h, round(height * scale))
    if crop == "random":
        if rng is None:
            raise ValueError("crop='random' needs an rng")
        x0, y0 = rng.randint(0, new_w - out_w), rng.randint(0, new_h - out_h)
    elif crop == "center":
        x0, y0 = (new_w - out_w) // 2, (new_h - out_h) // 2
    else:
        raise ValueError(f"crop must be 'center' or 'random', got {crop!r}")
    box = (x0, y0, x0 + out_w, y0 + out_h)

    def resample(array: np.ndarray, mode: int) -> np.ndarray:
        image = Image.fromarray(array)
        return np.asarray(image.resize((new_w, new_h), mode).crop(box))

    sx, sy = new_w / width, new_h / height
    intrinsics[0] *= sx
    intrinsics[1] *= sy
    intrinsics[0, 2] -= x0
    intrinsics[1, 2] -= y0
    rgb = resample(rgb, rgb_filter)
    depth = None if depth is None else resample(depth.astype(np.float32), Image.NEAREST)
    mask = None if mask is None else resample(mask.astype(np.int32), Image.NEAREST).astype(np.int64)
    return rgb, intrinsics, depth, mask


class PhotometricAugmentation(torch.nn.Module):
    """Colour jitter, per view, on the device; geometry (and so intrinsics) is untouched.

    Independent per-view jitter mimics auto-exposure differences between frames of a real capture.
    It is for the encoder's input only: ``SceneDataModule`` keeps the un-jittered images beside the
    jittered ones (``MultiViewBatch.clean_images``) and the teachers read those, because a target
    view's random jitter is not predictable from the context views and would only add noise to the
    loss. (Spa3R trains without colour jitter: ``datamodule.augment=false``.)
    """

    def __init__(
        self, brightness: float = 0.3, contrast: float = 0.3, saturation: float = 0.3, hue: float = 0.03, p: float = 0.8
    ):
        super().__init__()
        import kornia.augmentation as K  # noqa: N812 (kornia's own idiom)

        self.jitter = K.ColorJitter(brightness, contrast, saturation, hue, p=p)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, V, 3, H, W] in [0, 1] -> same shape, still in [0, 1]."""
        batch, views = images.shape[:2]
        jittered = self.jitter(images.flatten(0, 1))  # (B V) 3 H W
        return jittered.clamp(0, 1).view(batch, views, *images.shape[2:])
