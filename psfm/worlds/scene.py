"""The procedural world's scene description: a room, labelled objects and a camera path.

Conventions (``docs/conventions.md``): the world frame is metric and right-handed with z up
(gravity is -z); the floor is the plane z = 0 and the room spans
``[-W/2, W/2] x [-D/2, D/2] x [0, H]``. Cameras use the OpenCV convention (x right, y down,
z forward) and poses are camera-to-world 4x4 matrices.

Everything here is plain numpy so the description can be pickled to generator processes and
written to JSON without touching torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def yaw_rotation(yaw: float) -> np.ndarray:
    """Rotation about +z by ``yaw`` radians; columns are the box's local axes in world coordinates."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class OrientedBox:
    """A gravity-aligned box: ``center`` [3] and full ``size`` [3] along its local axes, turned by ``yaw``."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float

    @property
    def rotation(self) -> np.ndarray:
        return yaw_rotation(self.yaw)

    def corners(self) -> np.ndarray:
        """The 8 corners ``[8, 3]`` in world coordinates, bottom face first."""
        signs = np.array([[x, y, z] for z in (-1, 1) for y in (-1, 1) for x in (-1, 1)], dtype=np.float64)
        local = signs * (np.asarray(self.size) / 2)
        return local @ self.rotation.T + np.asarray(self.center)

    def to_json(self) -> dict:
        """Common oriented-box record: centroid, axis lengths and normalized axes (columns of R)."""
        rotation = self.rotation
        return {
            "centroid": [float(v) for v in self.center],
            "axes_lengths": [float(v) for v in self.size],
            "normalized_axes": [[float(v) for v in rotation[:, i]] for i in range(3)],
            "yaw": float(self.yaw),
        }


@dataclass(frozen=True)
class SceneObject:
    """One labelled object. ``instance_id`` is its value in the instance masks (0 is the room)."""

    instance_id: int
    category: str
    shape: str  # box | cylinder | sphere | cone | table
    color_name: str
    color_rgb: tuple[float, float, float]
    box: OrientedBox
    supported_by: int = 0  # instance id it rests on; 0 is the floor

    def to_json(self) -> dict:
        return {
            "instance_id": self.instance_id,
            "category": self.category,
            "shape": self.shape,
            "color": self.color_name,
            "color_rgb": [round(float(c), 4) for c in self.color_rgb],
            "box": self.box.to_json(),
            "supported_by": self.supported_by,
        }


@dataclass(frozen=True)
class Room:
    """An axis-aligned room with textured floor and walls, lit by ambient + one directional light."""

    size: tuple[float, float, float]  # W (x), D (y), H (z) in metres
    floor_pattern: str  # checker | stripes | planks | plain
    floor_colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    floor_scale: float  # pattern period in metres
    wall_colors: tuple[tuple[float, float, float], ...]  # -x, +x, -y, +y walls
    ceiling_color: tuple[float, float, float]
    light_direction: tuple[float, float, float]  # unit vector pointing *towards* the light
    ambient: float

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` corners of the room volume."""
        w, d, h = self.size
        return np.array([-w / 2, -d / 2, 0.0]), np.array([w / 2, d / 2, h])

    def to_json(self) -> dict:
        lower, upper = self.bounds
        return {
            "extent_min": [float(v) for v in lower],
            "extent_max": [float(v) for v in upper],
            "size": [float(v) for v in self.size],
            "floor_area": float(self.size[0] * self.size[1]),
        }


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``intrinsics`` [3, 3] in pixels and ``cam_to_world`` [4, 4] (OpenCV axes)."""

    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    height: int
    width: int


@dataclass(frozen=True)
class Scene:
    """A complete world sample: everything needed to render it and to answer questions about it."""

    scene_id: str
    seed: int
    room: Room
    objects: tuple[SceneObject, ...]
    cameras: tuple[Camera, ...] = field(default_factory=tuple)
