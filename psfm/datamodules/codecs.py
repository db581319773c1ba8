"""Image codecs of the shard format: sRGB JPEG/PNG, 16-bit millimetre depth PNG, instance-id PNG.

Decoders raise ``ShardFormatError`` naming the member, so a truncated JPEG is reported as such and
the loader can skip the scene instead of crashing a worker.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from psfm.datamodules.format import ShardFormatError

MAX_DEPTH_M = 65.535  # the largest depth a 16-bit millimetre PNG holds


def encode_rgb(rgb: np.ndarray, fmt: str = "jpg", quality: int = 90) -> bytes:
    """[H, W, 3] uint8 -> JPEG or PNG bytes (deterministic for equal input)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_rgb expects [H, W, 3] uint8, got {rgb.dtype} {rgb.shape}")
    buffer = io.BytesIO()
    if fmt == "jpg":
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    elif fmt == "png":
        Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    else:
        raise ValueError(f"unknown image format {fmt!r}; use 'jpg' or 'png'")
    return buffer.getvalue()


def encode_depth(depth_m: np.ndarray) -> bytes:
    """[H, W] metric z-depth -> 16-bit PNG in millimetres; 0 marks unknown (NaN, <= 0 or beyond 65.5 m)."""
    depth = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    millimetres = np.where((depth > 0) & (depth <= MAX_DEPTH_M), np.round(depth * 1000.0), 0)
    buffer = io.BytesIO()
    Image.fromarray(millimetres.astype(np.uint16)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_mask(instance: np.ndarray) -> bytes:
    """[H, W] non-negative instance ids -> 8-bit PNG when they fit, else 16-bit."""
    if instance.min(initial=0) < 0 or instance.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError("instance ids must lie in [0, 65535]")
    dtype = np.uint8 if instance.max(initial=0) < 256 else np.uint16
    buffer = io.BytesIO()
    Image.fromarray(instance.astype(dtype)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _open(data: bytes, where: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # force the full decode so truncation surfaces here, not later
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise ShardFormatError(f"{where}: cannot decode image ({type(error).__name__}: {error})") from None
    return image


def decode_rgb(data: bytes, where: str = "image") -> np.ndarray:
    """JPEG/PNG bytes -> [H, W, 3] uint8."""
    image = _open(data, where)
    return np.asarray(image.convert("RGB") if image.mode != "RGB" else image)


def decode_depth(data: bytes, where: str = "depth") -> np.ndarray:
    """16-bit millimetre PNG bytes -> [H, W] float32 metres (0 = unknown)."""
    image = _open(data, where)
    if image.mode not in ("I;16", "I;16B", "I", "L"):
        raise ShardFormatError(f"{where}: depth PNG has mode {image.mode}, expected 16-bit grayscale")
    return np.asarray(image, dtype=np.float32) / 1000.0


def decode_mask(data: bytes, where: str = "mask") -> np.ndarray:
    """8/16-bit PNG bytes -> [H, W] int64 instance ids."""
    image = _open(data, where)
    if image.mode not in ("I;16", "I;16B", "I", "L", "P"):
        raise ShardFormatError(f"{where}: mask PNG has mode {image.mode}, expected 8- or 16-bit grayscale")
    return np.asarray(image).astype(np.int64)
