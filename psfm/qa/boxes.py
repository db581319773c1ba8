"""Measurements on gravity-aligned, yaw-only boxes: volume, overlap, 3D IoU, closest-point distance.

Boxes are ``psfm.worlds.OrientedBox`` (``center`` [3], full ``size`` [3] along the box's own axes,
``yaw`` about +z), the one box type of the project, in a z-up metric frame.
"""

from __future__ import annotations

import math

import numpy as np

from psfm.qa.polygons import clip_convex, polygon_area, rectangle_corners
from psfm.worlds.scene import OrientedBox


def box_volume(box: OrientedBox) -> float:
    return float(np.prod(box.size))


def footprint(box: OrientedBox) -> np.ndarray:
    """The box's floor footprint [4, 2], counter-clockwise."""
    return rectangle_corners(np.asarray(box.center[:2]), np.asarray(box.size[:2]), box.yaw)


def bottom(box: OrientedBox) -> float:
    return float(box.center[2] - box.size[2] / 2)


def top(box: OrientedBox) -> float:
    return float(box.center[2] + box.size[2] / 2)


def footprint_overlap(a: OrientedBox, b: OrientedBox) -> float:
    """Area (m²) shared by the two footprints."""
    return max(polygon_area(clip_convex(footprint(a), footprint(b))), 0.0)


def intersection_volume(a: OrientedBox, b: OrientedBox) -> float:
    """Exact overlap volume of two yaw-only boxes: footprint polygon overlap times vertical overlap."""
    height = min(top(a), top(b)) - max(bottom(a), bottom(b))
    if height <= 0:
        return 0.0
    return footprint_overlap(a, b) * height


def iou_3d(a: OrientedBox, b: OrientedBox) -> float:
    """Intersection over union of the two volumes (0 when either is empty)."""
    inter = intersection_volume(a, b)
    union = box_volume(a) + box_volume(b) - inter
    return inter / union if union > 0 else 0.0


def overlap_of_smaller(a: OrientedBox, b: OrientedBox) -> float:
    """Intersection volume over the smaller box's volume: the multi-view merge criterion.

    Unlike IoU it is high when a partial view's box sits inside the full object's box.
    """
    smaller = min(box_volume(a), box_volume(b))
    return intersection_volume(a, b) / smaller if smaller > 0 else 0.0


def project_onto_box(point: np.ndarray, box: OrientedBox) -> np.ndarray:
    """The point of the (solid) box nearest to ``point`` [3]."""
    rotation = box.rotation
    local = rotation.T @ (np.asarray(point, dtype=np.float64) - np.asarray(box.center))
    half = np.asarray(box.size) / 2
    return rotation @ np.clip(local, -half, half) + np.asarray(box.center)


def box_distance(a: OrientedBox, b: OrientedBox, iterations: int = 500, tolerance: float = 1e-9) -> float:
    """Distance between the closest points of two solid boxes (0 when they touch or overlap).

    Alternating projections between two convex sets converge to a closest pair (Cheney and Goldstein,
    1959); projecting onto a box is a clamp in its own frame, so each step is exact and cheap.
    """
    point_b = np.asarray(b.center, dtype=np.float64)
    previous = math.inf
    distance = math.inf
    for _ in range(iterations):
        point_a = project_onto_box(point_b, a)
        point_b = project_onto_box(point_a, b)
        distance = float(np.linalg.norm(point_a - point_b))
        if previous - distance < tolerance:
            break
        previous = distance
    return distance


def horizontal_sides(box: OrientedBox) -> tuple[float, float]:
    """``(longer, shorter)`` horizontal side of the box in metres."""
    length, width = float(box.size[0]), float(box.size[1])
    return max(length, width), min(length, width)


def long_axis_angle(box: OrientedBox) -> float:
    """Direction of the longer horizontal side, radians in [0, pi)."""
    angle = box.yaw if box.size[0] >= box.size[1] else box.yaw + np.pi / 2
    return float(angle % np.pi)


def extent_along(box: OrientedBox, direction: np.ndarray) -> float:
    """Length of the box's shadow on a unit ``direction`` [3]: how wide it looks along that axis."""
    half = np.asarray(box.size) / 2
    return float(2 * np.sum(np.abs(box.rotation.T @ np.asarray(direction, dtype=np.float64)) * half))
