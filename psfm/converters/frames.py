"""From what a capture format says about a frame to one psfm view: load, undistort, resample depth and masks, fit.

Every converter only parses its format's metadata into ``Frame`` s; the pixel work lives here, once, in
numpy and PIL (no OpenCV). Conventions are ``docs/conventions.md``: OpenCV camera axes, pixel centres at
``u + 0.5`` (so resizing by s scales ``fx, cx`` by s exactly), z-depth in metres.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from psfm.datamodules.format import RIGID_TOLERANCE
from psfm.datamodules.transforms import fit_view


class CaptureError(ValueError):
    """A capture file that cannot be converted as it is; ``reason`` is the short name its skips are counted under.

    The message names the file and what is wrong with it, e.g.
    ``scene0/transforms.json frames[3]: image scene0/images/0003.png not found``.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """One frame as its format describes it, before any pixel is read (a video frame brings its decoded ``pixels``).

    ``intrinsics`` are in pixels of an image of ``declared_size`` ([H, W]); when the image on disk has another
    size (a downscaled folder), they are scaled per axis to it. ``distortion`` holds OpenCV's coefficients
    ``(k1, k2, p1, p2, k3, k4, k5, k6)`` (shorter is zero-padded) or None for a pinhole camera.
    """

    image: Path
    where: str  # what names this frame in messages: "transforms.json frames[3]", "images.bin image 12"
    intrinsics: np.ndarray  # [3, 3]
    cam_to_world: np.ndarray | None = None  # [4, 4] OpenCV camera-to-world; None for an unposed capture
    declared_size: tuple[int, int] | None = None  # [H, W] the intrinsics refer to; None: the image's own
    distortion: np.ndarray | None = None
    depth: Path | None = None  # 16-bit PNG, z-depth in depth_units metres per unit
    depth_intrinsics: np.ndarray | None = None  # [3, 3] of the depth image; None: the colour intrinsics
    depth_units: float = 1e-3
    exif_transpose: bool = False
    pixels: np.ndarray | None = None  # [H, W, 3] uint8 already decoded (a video's frames exist only in its file)
    mask: Path | None = None  # 8- or 16-bit PNG of instance ids registered to the colour image (any resolution)
    mask_background: frozenset[int] = frozenset()  # ids the mask holds that psfm stores as 0 (room structure)


@dataclass(frozen=True)
class View:
    """A loaded view, ready for ``build_sample``."""

    image: np.ndarray  # [H, W, 3] uint8
    intrinsics: np.ndarray  # [3, 3]
    cam_to_world: np.ndarray | None
    depth: np.ndarray | None  # [H, W] float32 metres, 0 = unknown
    mask: np.ndarray | None = None  # [H, W] uint16 instance ids, 0 = background


def check_pose(cam_to_world: np.ndarray, where: str) -> None:
    """Refuse a pose the shard format would refuse (non-finite, or not a rotation + translation)."""
    pose = np.asarray(cam_to_world, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise CaptureError("non_finite_pose", f"{where}: camera pose holds NaN or infinity (or is not 4x4)")
    rotation = pose[:3, :3]
    rigid = np.max(np.abs(rotation.T @ rotation - np.eye(3))) <= RIGID_TOLERANCE and np.linalg.det(rotation) > 0
    if not rigid or not np.allclose(pose[3], [0, 0, 0, 1], atol=1e-6):
        raise CaptureError("non_rigid_pose", f"{where}: camera pose is not a rotation and a translation")


def read_rgb(path: Path, where: str, exif_transpose: bool = False) -> np.ndarray:
    """[H, W, 3] uint8; alpha is dropped, EXIF orientation applied when asked."""
    if not path.is_file():
        raise CaptureError("missing_image", f"{where}: image {path} not found")
    try:
        with Image.open(path) as image:
            image.load()
            if exif_transpose:
                image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise CaptureError("unreadable_image", f"{where}: cannot decode {path} ({error})") from None


GREY_MODES = ("L", "I;16", "I;16B", "I;16L", "I")


def _read_grey_png(path: Path, where: str, what: str, called: str, expected: str) -> np.ndarray:
    """A greyscale PNG's raw values; skips as ``missing_<what>`` / ``unreadable_<what>``, messages say ``called``."""
    if not path.is_file():
        raise CaptureError(f"missing_{what}", f"{where}: {called} {path} not found")
    try:
        with Image.open(path) as image:
            if image.mode not in GREY_MODES:
                raise CaptureError(f"unreadable_{what}", f"{where}: {path} is {image.mode}, expected {expected}")
            return np.asarray(image)
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise CaptureError(f"unreadable_{what}", f"{where}: cannot decode {path} ({error})") from None


def read_depth(path: Path, where: str, units: float) -> np.ndarray:
    """[H, W] float32 metres from a 16-bit PNG (0 stays unknown)."""
    return _read_grey_png(path, where, "depth", "depth image", "a 16-bit PNG").astype(np.float32) * np.float32(units)


def read_mask(path: Path, where: str) -> np.ndarray:
    """[H, W] uint16 instance ids from an 8- or 16-bit greyscale PNG."""
    ids = _read_grey_png(path, where, "mask", "instance mask", "an 8- or 16-bit PNG")
    if ids.min(initial=0) < 0 or ids.max(initial=0) > np.iinfo(np.uint16).max:
        raise CaptureError("unreadable_mask", f"{where}: {path} holds ids outside [0, 65535]")
    return ids.astype(np.uint16)


def scale_intrinsics(intrinsics: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """Intrinsics of the image resized by (``scale_x``, ``scale_y``): exact under the pixel-corner convention."""
    return np.diag([scale_x, scale_y, 1.0]) @ np.asarray(intrinsics, dtype=np.float64)


def distort_normalized(x: np.ndarray, y: np.ndarray, coefficients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's distortion model on normalized camera coordinates (rational radial + tangential)."""
    k1, k2, p1, p2, k3, k4, k5, k6 = np.pad(np.asarray(coefficients, np.float64), (0, 8 - len(coefficients)))
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    x_distorted = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    y_distorted = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return x_distorted, y_distorted


def sample_bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``image`` [H, W, C] at continuous pixel coordinates ``u, v`` [h, w] (centres at +0.5); outside is 0."""
    height, width = image.shape[:2]
    x, y = u - 0.5, v - 0.5
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    x, y = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
    x0, y0 = np.minimum(np.floor(x).astype(np.int64), width - 2), np.minimum(np.floor(y).astype(np.int64), height - 2)
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    source = image.astype(np.float32)
    top = source[y0, x0] * (1 - wx) + source[y0, x1] * wx
    bottom = source[y1, x0] * (1 - wx) + source[y1, x1] * wx
    result = (top * (1 - wy) + bottom * wy) * inside[..., None]
    return np.clip(np.round(result), 0, 255).astype(image.dtype)


def recorded_at(
    intrinsics: np.ndarray, coefficients: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Where the distorted camera recorded each pixel centre of the pinhole image of ``size`` ([h, w] u and v).

    Each output pixel centre is pushed through the forward distortion model, which is closed-form: no iterative
    inversion is needed for whole images.
    """
    height, width = size
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x_distorted, y_distorted = distort_normalized((u - cx) / fx, (v - cy) / fy, coefficients)
    return fx * x_distorted + cx, fy * y_distorted + cy


def undistort(image: np.ndarray, intrinsics: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """The pinhole image with the same ``intrinsics`` that the distorted camera saw (bilinear; black outside)."""
    return sample_bilinear(image, *recorded_at(intrinsics, coefficients, image.shape[:2]))


def undistort_nearest(values: np.ndarray, intrinsics: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``undistort`` for maps whose values must not mix (instance ids): nearest neighbour, 0 outside."""
    u, v = recorded_at(intrinsics, coefficients, values.shape[:2])
    column, row = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    inside = (column >= 0) & (column < values.shape[1]) & (row >= 0) & (row < values.shape[0])
    resampled = np.zeros_like(values)
    resampled[inside] = values[row[inside], column[inside]]
    return resampled


def resample_nearest(
    values: np.ndarray, source_intrinsics: np.ndarray, color_intrinsics: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """A depth map or instance mask seen through the colour camera (same centre and axes), nearest, 0 where unseen.

    z-depth does not change between two cameras that share centre and axes, so this is exact up to the
    nearest-pixel choice; when the source intrinsics are the colour ones scaled, it is a nearest resize.
    """
    height, width = size
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pixels = np.stack([u, v, np.ones_like(u)], -1) @ (source_intrinsics @ np.linalg.inv(color_intrinsics)).T
    column = np.floor(pixels[..., 0] / pixels[..., 2]).astype(np.int64)
    row = np.floor(pixels[..., 1] / pixels[..., 2]).astype(np.int64)
    inside = (column >= 0) & (column < values.shape[1]) & (row >= 0) & (row < values.shape[0])
    resampled = np.zeros(size, values.dtype)
    resampled[inside] = values[row[inside], column[inside]]
    return resampled


def _resize(view: View, width: int, height: int) -> View:
    old_height, old_width = view.image.shape[:2]
    if (old_height, old_width) == (height, width):
        return view
    shrinking = width <= old_width and height <= old_height  # area averaging then, which neither aliases nor blurs
    filter_ = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    image = np.asarray(Image.fromarray(view.image).resize((width, height), filter_))
    depth, mask = (
        None if values is None else np.asarray(Image.fromarray(values).resize((width, height), Image.NEAREST))
        for values in (view.depth, view.mask)
    )
    intrinsics = scale_intrinsics(view.intrinsics, width / old_width, height / old_height)
    return replace(view, image=image, intrinsics=intrinsics, depth=depth, mask=mask)


def limit_size(view: View, max_side: int) -> View:
    """Shrink so the longer side is at most ``max_side`` (0 = keep), keeping the aspect ratio to the pixel."""
    height, width = view.image.shape[:2]
    if max_side <= 0 or max(height, width) <= max_side:
        return view
    scale = max_side / max(height, width)
    return _resize(view, max(1, round(width * scale)), max(1, round(height * scale)))


def fit_to(view: View, size: tuple[int, int]) -> View:
    """Scale to cover ``size`` ([H, W]) keeping the aspect ratio, then centre-crop: no view is stretched.

    The loader's ``fit_view`` (one geometry for both), with area averaging when the colours shrink.
    """
    height, width = size
    old_height, old_width = view.image.shape[:2]
    if (old_height, old_width) == (height, width):
        return view
    shrinking = max(height / old_height, width / old_width) <= 1
    rgb_filter = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    image, intrinsics, depth, mask = fit_view(
        view.image, view.intrinsics, size, depth=view.depth, mask=view.mask, rgb_filter=rgb_filter
    )
    return View(image, intrinsics, view.cam_to_world, depth, mask)


def load_frame(frame: Frame, undistort_images: bool = True) -> View:
    """Read a frame's pixels into a pinhole view with intrinsics of the image as loaded.

    Raises:
        CaptureError: missing or unreadable files, an invalid pose, or a distorted camera with
            ``undistort_images`` false (``reason='distorted_camera'``).
    """
    if frame.cam_to_world is not None:
        check_pose(frame.cam_to_world, frame.where)
    if frame.distortion is not None and np.any(frame.distortion) and not undistort_images:
        raise CaptureError(
            "distorted_camera",
            f"{frame.where}: lens distortion {np.round(frame.distortion, 6).tolist()} and distortion=refuse "
            "(distortion=undistort resamples it to a pinhole image)",
        )
    image = frame.pixels if frame.pixels is not None else read_rgb(frame.image, frame.where, frame.exif_transpose)
    height, width = image.shape[:2]
    intrinsics = np.asarray(frame.intrinsics, dtype=np.float64)
    if frame.declared_size is not None and tuple(frame.declared_size) != (height, width):
        declared_height, declared_width = frame.declared_size
        intrinsics = scale_intrinsics(intrinsics, width / declared_width, height / declared_height)
    distorted = frame.distortion is not None and np.any(frame.distortion)
    if distorted:
        image = undistort(image, intrinsics, frame.distortion)
    depth = None
    if frame.depth is not None:
        raw = read_depth(frame.depth, frame.where, frame.depth_units)
        depth_intrinsics = frame.depth_intrinsics
        if depth_intrinsics is None:  # registered to colour: same field of view, possibly another resolution
            depth_intrinsics = scale_intrinsics(intrinsics, raw.shape[1] / width, raw.shape[0] / height)
        depth = resample_nearest(raw, depth_intrinsics, intrinsics, (height, width))
    mask = None
    if frame.mask is not None:
        ids = read_mask(frame.mask, frame.where)
        if frame.mask_background:
            ids[np.isin(ids, list(frame.mask_background))] = 0
        mask_intrinsics = scale_intrinsics(intrinsics, ids.shape[1] / width, ids.shape[0] / height)
        mask = resample_nearest(ids, mask_intrinsics, intrinsics, (height, width))
        if distorted:  # registered to the recorded colour image, so it follows it through the lens model
            mask = undistort_nearest(mask, intrinsics, frame.distortion)
    return View(image, intrinsics, frame.cam_to_world, depth, mask)
