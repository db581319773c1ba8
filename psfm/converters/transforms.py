"""nerfstudio / instant-ngp ``transforms.json``: OpenGL camera-to-world poses, per-capture or per-frame intrinsics.

One scene is a folder holding ``transforms.json``. Intrinsics come from ``fl_x, fl_y, cx, cy, w, h`` (a frame's
own values win over the capture's), or from ``camera_angle_x`` alone (``fx = 0.5 w / tan(angle / 2)``, the
principal point at the centre); a missing ``w, h`` is read from the image. Poses are OpenGL (x right, y up,
z backward) and become psfm's OpenCV ones by ``cam_to_world @ diag(1, -1, -1, 1)``. ``file_path`` is relative to
the JSON, with or without an extension. ``k1, k2, k3, p1, p2`` are OpenCV's radial-tangential model and are
undistorted (``distortion=undistort``) or refused; fisheye and equirectangular captures are refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from psfm.converters.base import Capture, natural_key
from psfm.converters.frames import CaptureError, Frame
from psfm.converters.options import ConvertOptions

LOOKS_FOR = "a transforms.json in the folder or in its subfolders"
FILE_NAME = "transforms.json"
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE")


def find_scenes(root: Path) -> list[Path]:
    if root.is_file() and root.name == FILE_NAME:
        return [root.parent]
    if (root / FILE_NAME).is_file():
        return [root]
    return sorted((path.parent for path in root.rglob(FILE_NAME)), key=lambda p: natural_key(str(p)))


def resolve_image(json_dir: Path, file_path: str, downscale_factor: int) -> Path:
    """The image a frame names: relative to the JSON, in ``<folder>_<n>/`` when downscaled, any extension."""
    path = json_dir / file_path
    if downscale_factor > 1:
        path = path.parent.with_name(f"{path.parent.name}_{downscale_factor}") / path.name
    if path.suffix in IMAGE_SUFFIXES or path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + ".png")  # missing: reported as such when loaded


def _camera_value(frame: dict[str, Any], capture: dict[str, Any], name: str) -> Any:
    return frame[name] if name in frame else capture.get(name)


def frame_camera(
    frame: dict[str, Any], capture: dict[str, Any], image: Path, where: str
) -> tuple[np.ndarray, tuple[int, int], np.ndarray | None]:
    """Intrinsics [3, 3], the [H, W] they refer to, and OpenCV distortion coefficients (None: pinhole)."""
    value = lambda name: _camera_value(frame, capture, name)  # noqa: E731
    model = value("camera_model") or "OPENCV"
    if model not in PINHOLE_MODELS:
        raise CaptureError("unsupported_camera_model", f"{where}: camera_model {model!r} is not a pinhole model")
    width, height = value("w"), value("h")
    if width is None or height is None:
        if not image.is_file():
            raise CaptureError("missing_image", f"{where}: image {image} not found")
        with Image.open(image) as opened:
            width, height = opened.size
    if value("fl_x") is not None:
        fx = float(value("fl_x"))
        fy = float(value("fl_y")) if value("fl_y") is not None else fx
    elif value("camera_angle_x") is not None:
        fx = 0.5 * width / math.tan(float(value("camera_angle_x")) / 2)
        angle_y = value("camera_angle_y")
        fy = 0.5 * height / math.tan(float(angle_y) / 2) if angle_y is not None else fx
    else:
        raise CaptureError("missing_intrinsics", f"{where}: neither fl_x nor camera_angle_x is given")
    cx = float(value("cx")) if value("cx") is not None else width / 2
    cy = float(value("cy")) if value("cy") is not None else height / 2
    intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    k1, k2, k3, k4, p1, p2 = (float(value(name) or 0.0) for name in ("k1", "k2", "k3", "k4", "p1", "p2"))
    if k4:
        raise CaptureError("unsupported_distortion", f"{where}: k4={k4} has no OpenCV pinhole equivalent")
    distortion = np.array([k1, k2, p1, p2, k3]) if any((k1, k2, k3, p1, p2)) else None
    return intrinsics, (int(height), int(width)), distortion


def frame_pose(frame: dict[str, Any], where: str) -> np.ndarray:
    """The OpenCV camera-to-world [4, 4] of an OpenGL ``transform_matrix`` (3x4 or 4x4)."""
    try:
        matrix = np.array(frame["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise CaptureError("invalid_pose", f"{where}: transform_matrix is missing or not a matrix of numbers") from None
    if matrix.shape == (3, 4):
        matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
    if matrix.shape != (4, 4):
        raise CaptureError("invalid_pose", f"{where}: transform_matrix is {matrix.shape}, expected 4x4")
    return matrix @ OPENGL_TO_OPENCV


def read_scene(scene: Path, options: ConvertOptions) -> Capture:
    path = scene / FILE_NAME
    try:
        capture = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise CaptureError("invalid_metadata", f"{path}: cannot read it as JSON ({error})") from None
    if not isinstance(capture, dict) or not isinstance(capture.get("frames"), list):
        raise CaptureError("invalid_metadata", f"{path}: no 'frames' list")
    model = capture.get("camera_model")
    if model is not None and model not in PINHOLE_MODELS:
        raise CaptureError("unsupported_camera_model", f"{path}: camera_model {model!r} is not a pinhole model")
    frames, skipped = [], []
    entries = sorted(enumerate(capture["frames"]), key=lambda item: natural_key(str(item[1].get("file_path", ""))))
    for index, entry in entries:
        where = f"{path} frames[{index}]"
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("file_path"), str):
                raise CaptureError("invalid_metadata", f"{where}: no file_path")
            image = resolve_image(scene, entry["file_path"], options.transforms.downscale_factor)
            intrinsics, size, distortion = frame_camera(entry, capture, image, where)
            pose = frame_pose(entry, where)
        except CaptureError as error:
            skipped.append(error)
            continue
        frames.append(Frame(image, where, intrinsics, pose, size, distortion))
    return Capture(
        frames,
        pose_source=options.transforms.pose_source,
        metric_scale="none",
        source={"file": FILE_NAME, "camera_model": model or "OPENCV", "convention": "opengl"},
        skipped=skipped,
    )
