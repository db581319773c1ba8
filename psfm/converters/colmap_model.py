"""A reader of COLMAP sparse models (``cameras``, ``images``, ``points3D``; ``.bin`` or ``.txt``).

Written from COLMAP's documented formats (colmap.github.io/format.html), numpy only, so psfm reads models
without pycolmap. COLMAP images store **world-to-camera** poses (``qvec = w, x, y, z`` and ``tvec``) in the
OpenCV camera convention, with the pixel-corner origin psfm uses as well (centre of the first pixel at 0.5).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from psfm.converters.frames import CaptureError

# model id -> (name, number of parameters), in COLMAP's numbering
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: model_id for model_id, (name, _) in CAMERA_MODELS.items()}


@dataclass(frozen=True)
class ColmapCamera:
    camera_id: int
    model: str
    width: int
    height: int
    params: np.ndarray


@dataclass(frozen=True)
class ColmapImage:
    image_id: int
    qvec: np.ndarray  # [4] w, x, y, z of the world-to-camera rotation
    tvec: np.ndarray  # [3] world-to-camera translation
    camera_id: int
    name: str
    points2d: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [N, 2] pixels
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [N], -1 = none


@dataclass(frozen=True)
class ColmapPoint:
    point3d_id: int
    xyz: np.ndarray
    rgb: np.ndarray
    error: float


def qvec_to_rotation(qvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (w, x, y, z); normalized first, as COLMAP does."""
    w, x, y, z = np.asarray(qvec, dtype=np.float64) / np.linalg.norm(qvec)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def invert_world_to_camera(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The OpenCV camera-to-world [4, 4] of a COLMAP world-to-camera pose ``x_cam = R x_world + t``: [Rᵀ | -Rᵀt]."""
    rotation = np.asarray(rotation, dtype=np.float64)
    pose = np.eye(4)
    pose[:3, :3] = rotation.T
    pose[:3, 3] = -rotation.T @ np.asarray(translation, dtype=np.float64)
    return pose


def cam_to_world(image: ColmapImage) -> np.ndarray:
    """The OpenCV camera-to-world [4, 4] of a COLMAP image: the inverse of its world-to-camera pose."""
    return invert_world_to_camera(qvec_to_rotation(image.qvec), image.tvec)


def pinhole(camera: ColmapCamera, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Intrinsics [3, 3] and OpenCV distortion coefficients (None: none) of a perspective camera model.

    Raises:
        CaptureError: ``unsupported_camera_model`` for fisheye and FOV models, which no pinhole undistortion
            of the same field of view represents.
    """
    p = [float(v) for v in camera.params]
    if camera.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
        distortion = [*extra, 0.0, 0.0, 0.0][:4] if extra else None  # k (SIMPLE_RADIAL) or k1 k2 (RADIAL)
    elif camera.model in ("PINHOLE", "OPENCV", "FULL_OPENCV"):
        fx, fy, cx, cy = p[:4]
        distortion = p[4:] or None  # OPENCV: k1 k2 p1 p2; FULL_OPENCV: k1 k2 p1 p2 k3 k4 k5 k6 (OpenCV's order)
    else:
        raise CaptureError(
            "unsupported_camera_model",
            f"{where}: camera {camera.camera_id} is {camera.model}; psfm converts SIMPLE_PINHOLE, PINHOLE, "
            "SIMPLE_RADIAL, RADIAL, OPENCV and FULL_OPENCV (undistort fisheye models with colmap image_undistorter)",
        )
    intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return intrinsics, None if distortion is None or not any(distortion) else np.array(distortion, np.float64)


# binary -----------------------------------------------------------------------------------------------------
def _read(handle: BinaryIO, fmt: str, path: Path) -> tuple:
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) != size:
        raise CaptureError("invalid_metadata", f"{path}: ends early (truncated COLMAP binary)")
    return struct.unpack(fmt, data)


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    with path.open("rb") as handle:
        (count,) = _read(handle, "<Q", path)
        for _ in range(count):
            camera_id, model_id, width, height = _read(handle, "<iiQQ", path)
            if model_id not in CAMERA_MODELS:
                raise CaptureError(
                    "unknown_camera_model", f"{path}: camera {camera_id} has unknown model id {model_id}"
                )
            name, num_params = CAMERA_MODELS[model_id]
            params = np.array(_read(handle, f"<{num_params}d", path))
            cameras[camera_id] = ColmapCamera(camera_id, name, width, height, params)
    return cameras


def _read_name(handle: BinaryIO, path: Path) -> str:
    name = bytearray()
    while (char := handle.read(1)) != b"\x00":
        if not char:
            raise CaptureError("invalid_metadata", f"{path}: ends inside an image name")
        name += char
    return name.decode("utf-8")


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    images = {}
    with path.open("rb") as handle:
        (count,) = _read(handle, "<Q", path)
        for _ in range(count):
            image_id, *pose, camera_id = _read(handle, "<i7di", path)
            name = _read_name(handle, path)
            (num_points,) = _read(handle, "<Q", path)
            raw = handle.read(24 * num_points)
            if len(raw) != 24 * num_points:
                raise CaptureError("invalid_metadata", f"{path}: ends inside image {image_id}'s points")
            points = np.frombuffer(raw, dtype=[("xy", "<f8", 2), ("id", "<i8")])
            images[image_id] = ColmapImage(
                image_id,
                np.array(pose[:4]),
                np.array(pose[4:]),
                camera_id,
                name,
                points["xy"].copy(),
                points["id"].copy(),
            )
    return images


def _read_points_bin(path: Path) -> dict[int, ColmapPoint]:
    points = {}
    with path.open("rb") as handle:
        (count,) = _read(handle, "<Q", path)
        for _ in range(count):
            point_id, x, y, z, r, g, b, error = _read(handle, "<Q3d3Bd", path)
            (track_length,) = _read(handle, "<Q", path)
            handle.seek(8 * track_length, 1)  # (image_id, point2D_idx) int32 pairs: the images hold them too
            points[point_id] = ColmapPoint(point_id, np.array([x, y, z]), np.array([r, g, b], np.uint8), error)
    return points


# text -------------------------------------------------------------------------------------------------------
def _data_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text("utf-8").splitlines() if not line.lstrip().startswith("#")]


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for line in filter(None, _data_lines(path)):
        fields = line.split()
        try:
            camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
            params = np.array([float(v) for v in fields[4:]])
        except (IndexError, ValueError):
            raise CaptureError("invalid_metadata", f"{path}: cannot parse camera line {line!r}") from None
        if model not in MODEL_IDS:
            raise CaptureError("unknown_camera_model", f"{path}: camera {camera_id} has unknown model {model!r}")
        if len(params) != CAMERA_MODELS[MODEL_IDS[model]][1]:
            raise CaptureError("invalid_metadata", f"{path}: camera {camera_id} ({model}) has {len(params)} parameters")
        cameras[camera_id] = ColmapCamera(camera_id, model, width, height, params)
    return cameras


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    # two lines per image; the second (its 2D points) is empty for an image without any, so blank lines count
    lines = [line.strip() for line in path.read_text("utf-8").splitlines() if not line.startswith("#")]
    images = {}
    index = 0
    while index < len(lines):
        if not lines[index]:
            index += 1
            continue
        fields = lines[index].split(maxsplit=9)
        points = lines[index + 1].split() if index + 1 < len(lines) else []
        index += 2
        try:
            image_id, camera_id, name = int(fields[0]), int(fields[8]), fields[9]
            pose = [float(v) for v in fields[1:8]]
            xy_id = np.array(points, dtype=np.float64).reshape(-1, 3)
        except (IndexError, ValueError):
            raise CaptureError("invalid_metadata", f"{path}: cannot parse image line {lines[index - 2]!r}") from None
        images[image_id] = ColmapImage(
            image_id,
            np.array(pose[:4]),
            np.array(pose[4:]),
            camera_id,
            name,
            xy_id[:, :2],
            xy_id[:, 2].astype(np.int64),
        )
    return images


def _read_points_txt(path: Path) -> dict[int, ColmapPoint]:
    points = {}
    for line in filter(None, _data_lines(path)):
        fields = line.split()
        try:
            point_id, xyz, rgb, error = int(fields[0]), [float(v) for v in fields[1:4]], fields[4:7], float(fields[7])
        except (IndexError, ValueError):
            raise CaptureError("invalid_metadata", f"{path}: cannot parse point line {line[:80]!r}") from None
        points[point_id] = ColmapPoint(point_id, np.array(xyz), np.array(rgb, np.uint8), error)
    return points


# model ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: dict[int, ColmapPoint] | None  # None when the model folder has no points3D file
    folder: Path
    extension: str  # ".bin" or ".txt"


def model_extension(folder: Path) -> str | None:
    """``.bin`` or ``.txt`` when ``folder`` holds a model (binary preferred), else None."""
    for extension in (".bin", ".txt"):
        if (folder / f"cameras{extension}").is_file() and (folder / f"images{extension}").is_file():
            return extension
    return None


def read_model(folder: Path, points: bool = True) -> ColmapModel:
    """Read a sparse model folder.

    Raises:
        CaptureError: naming the file: no model, a truncated or unparsable file, an unknown camera model.
    """
    extension = model_extension(folder)
    if extension is None:
        raise CaptureError("invalid_metadata", f"{folder}: no cameras.bin/.txt with images.bin/.txt")
    binary = extension == ".bin"
    cameras = (_read_cameras_bin if binary else _read_cameras_txt)(folder / f"cameras{extension}")
    images = (_read_images_bin if binary else _read_images_txt)(folder / f"images{extension}")
    points_path = folder / f"points3D{extension}"
    point_cloud = None
    if points and points_path.is_file():
        point_cloud = (_read_points_bin if binary else _read_points_txt)(points_path)
    return ColmapModel(cameras, images, point_cloud, folder, extension)
