"""Unposed image folders: one scene per folder of images, natural order, EXIF orientation applied.

Such captures carry no cameras: every view gets ``cam_to_world: null`` (``pose_source: none``) and assumed
pinhole intrinsics, the principal point at the centre and a field of view of ``images.fov_deg`` across the
longer side (recorded in ``source``). Views whose size differs from the first one's are scaled to cover it
and centre-cropped, so nothing is stretched. Poses for such scenes come later (SfM), or from a pose model
at conversion (``pose_model=``, ``psfm.converters.poses``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from psfm.converters.base import Capture, list_files, natural_key
from psfm.converters.frames import CaptureError, Frame
from psfm.converters.options import ConvertOptions

LOOKS_FOR = "a folder of .jpg/.jpeg/.png images, or subfolders of such"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
UNPOSED = True  # pose_model= may predict its poses
EXIF_ORIENTATION = 274
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # the ones that swap width and height


def list_images(folder: Path) -> list[Path]:
    return list_files(folder, IMAGE_SUFFIXES)


def find_scenes(root: Path) -> list[Path]:
    if list_images(root):
        return [root]
    children = [path for path in root.iterdir() if path.is_dir()] if root.is_dir() else []
    return sorted((path for path in children if list_images(path)), key=lambda p: natural_key(p.name))


def upright_size(path: Path) -> tuple[int, int]:
    """[H, W] as the image is meant to be seen (after its EXIF orientation), read from the header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(EXIF_ORIENTATION) in TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise CaptureError("unreadable_image", f"{path}: cannot decode ({error})") from None
    return height, width


def assumed_intrinsics(height: int, width: int, fov_deg: float) -> np.ndarray:
    focal = 0.5 * max(height, width) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def read_scene(scene: Path, options: ConvertOptions) -> Capture:
    frames, skipped = [], []
    for path in list_images(scene):
        try:
            height, width = upright_size(path)
        except CaptureError as error:
            skipped.append(error)
            continue
        intrinsics = assumed_intrinsics(height, width, options.images.fov_deg)
        frames.append(Frame(path, str(path), intrinsics, None, (height, width), exif_transpose=True))
    return Capture(
        frames,
        pose_source="none",
        metric_scale="none",
        source={"intrinsics": "assumed", "fov_deg": options.images.fov_deg},
        skipped=skipped,
    )
