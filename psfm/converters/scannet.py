"""ScanNet-style folders: ``color/``, ``depth/`` (16-bit PNG, millimetres), ``pose/`` and ``intrinsic/``.

This is the layout ScanNet's SensReader exports (and many RGB-D captures imitate): frame ``<n>`` is
``color/<n>.jpg``, ``depth/<n>.png`` and ``pose/<n>.txt`` (a 4x4 OpenCV camera-to-world matrix, metres),
with ``intrinsic/intrinsic_color.txt`` and ``intrinsic_depth.txt`` (4x4, the upper-left 3x3 is K). Poses
that hold ``-inf``/NaN (tracking lost) are skipped and counted. Depth at another resolution than colour is
resampled into the colour camera, nearest neighbour, through ``K_depth K_color^-1`` (a nearest resize when
one K is the other scaled), so every view's depth is at its colour size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from psfm.converters.base import Capture, natural_key
from psfm.converters.frames import CaptureError, Frame
from psfm.converters.options import ConvertOptions

LOOKS_FOR = "a folder with color/, pose/ and intrinsic/ (depth/ optional), or subfolders of such"
COLOR_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_scene(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in ("color", "pose", "intrinsic"))


def find_scenes(root: Path) -> list[Path]:
    if is_scene(root):
        return [root]
    children = [path for path in root.iterdir() if path.is_dir()] if root.is_dir() else []
    return sorted((path for path in children if is_scene(path)), key=lambda p: natural_key(p.name))


def read_matrix(path: Path, reason: str) -> np.ndarray:
    """A 4x4 text matrix; NaN and inf are kept (the pose check names them)."""
    if not path.is_file():
        raise CaptureError(reason, f"{path}: not found")
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise CaptureError(reason, f"{path}: not a matrix of numbers ({error})") from None
    if matrix.shape != (4, 4):
        raise CaptureError(reason, f"{path}: holds a {matrix.shape[0]}x{matrix.shape[1]} matrix, expected 4x4")
    return matrix


def read_scene(scene: Path, options: ConvertOptions) -> Capture:
    color_intrinsics = read_matrix(scene / "intrinsic" / "intrinsic_color.txt", "invalid_metadata")[:3, :3]
    with_depth = options.scannet.depth and (scene / "depth").is_dir()
    depth_intrinsics = None
    if with_depth:
        depth_intrinsics = read_matrix(scene / "intrinsic" / "intrinsic_depth.txt", "invalid_metadata")[:3, :3]
    images = [path for path in (scene / "color").iterdir() if path.suffix.lower() in COLOR_SUFFIXES]
    frames, skipped = [], []
    for image in sorted(images, key=lambda path: natural_key(path.name)):
        pose_path = scene / "pose" / f"{image.stem}.txt"
        try:
            pose = read_matrix(pose_path, "invalid_pose")
        except CaptureError as error:
            skipped.append(error)
            continue
        depth = scene / "depth" / f"{image.stem}.png" if with_depth else None
        frames.append(
            Frame(image, str(pose_path), color_intrinsics, pose, depth=depth, depth_intrinsics=depth_intrinsics)
        )
    return Capture(
        frames,
        pose_source="gt",  # sensor tracking (BundleFusion for ScanNet), metric through the depth sensor
        metric_scale="sensor_depth",
        source={"layout": "scannet", "frames_listed": len(images)},
        skipped=skipped,
    )
