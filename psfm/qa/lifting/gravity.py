"""Gravity from the floor: RANSAC plane fit, checked against the cameras' up, turned into a rotation.

The rotation has the new axes as its *rows* (REFERENCE §2): ``R @ n_floor = e_z`` exactly, for any
combination of pitch and roll. Building it from columns is exact only for a pure pitch or a pure
roll, which is the known bug this module avoids (property-tested: residual tilt < 0.1°).

Sanity checks: the floor normal is oriented towards the cameras (they stand above the floor, so
"up" never points into it, which would invert every above/below and front/behind answer) and must
lie within ``max_tilt_deg`` of the cameras' mean up direction (walls and sloped clutter fail).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS_PER_VIEW = 20


@dataclass(frozen=True)
class FloorPlane:
    """``normal · p + offset = 0`` with a unit ``normal`` pointing up (towards the cameras)."""

    normal: np.ndarray
    offset: float
    inliers: int


def _plane_through(points: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Least-squares plane of ``points`` [N, 3] (N >= 3); None when degenerate."""
    centroid = points.mean(axis=0)
    _, singular, vt = np.linalg.svd(points - centroid, full_matrices=False)
    if singular[1] < 1e-9:
        return None
    normal = vt[2]
    return normal, -float(normal @ centroid)


def fit_floor(
    points: np.ndarray,
    camera_centers: np.ndarray,
    camera_ups: np.ndarray,
    rng: np.random.Generator,
    iterations: int = 300,
    threshold: float = 0.03,
    max_tilt_deg: float = 45.0,
    min_inliers: int = 200,
    view_ids: np.ndarray | None = None,
) -> FloorPlane | None:
    """RANSAC floor plane of room-structure points [N, 3]; None when no plausible floor exists.

    A candidate plane must have every camera above it, a normal within ``max_tilt_deg`` of the mean
    camera up, and no more than a few points below it (a table top has the floor beneath it). The
    winner is refined by least squares on its inliers and re-checked. With ``view_ids`` [N] (the
    view each point comes from), the floor must also be seen by several views
    (``max(2, 30 %)`` of them, ``MIN_POINTS_PER_VIEW`` inliers each): one view's bad depth can
    look like a plane, but not the same plane from many viewpoints.
    """
    mean_up = camera_ups.mean(axis=0)
    mean_up /= np.linalg.norm(mean_up)
    cos_tilt = np.cos(np.deg2rad(max_tilt_deg))

    def oriented(normal: np.ndarray, offset: float) -> tuple[np.ndarray, float] | None:
        if np.mean(camera_centers @ normal + offset) < 0:
            normal, offset = -normal, -offset
        if np.any(camera_centers @ normal + offset <= 0) or normal @ mean_up < cos_tilt:
            return None
        return normal, offset

    best: tuple[float, np.ndarray, float] | None = None
    if len(points) < 3:
        return None
    for _ in range(iterations):
        sample = points[rng.choice(len(points), 3, replace=False)]
        normal = np.cross(sample[1] - sample[0], sample[2] - sample[0])
        if np.linalg.norm(normal) < 1e-9:
            continue
        normal /= np.linalg.norm(normal)
        plane = oriented(normal, -float(normal @ sample[0]))
        if plane is None:
            continue
        signed = points @ plane[0] + plane[1]
        score = np.count_nonzero(np.abs(signed) < threshold) - 2 * np.count_nonzero(signed < -3 * threshold)
        if best is None or score > best[0]:
            best = (score, *plane)
    if best is None:
        return None
    on_plane = np.abs(points @ best[1] + best[2]) < threshold
    inliers = points[on_plane]
    if len(inliers) < min_inliers:
        return None
    if view_ids is not None:
        views = np.unique(view_ids)
        seeing = np.count_nonzero(np.bincount(view_ids[on_plane], minlength=views.max() + 1) >= MIN_POINTS_PER_VIEW)
        if seeing < max(2, int(np.ceil(0.3 * len(views)))):
            return None
    refined = _plane_through(inliers)
    plane = oriented(*refined) if refined is not None else None
    if plane is None:
        return None
    return FloorPlane(plane[0], plane[1], len(inliers))


def gravity_rotation(up: np.ndarray, reference_x: np.ndarray | None = None) -> np.ndarray:
    """Rotation [3, 3] whose rows are the new axes: x' (horizontal), y' = z' × x', z' = ``up``.

    ``R @ up == e_z``. x' is ``reference_x`` (default: the input frame's x axis) projected onto the
    horizontal plane, so an input frame that is already gravity-aligned is left unrotated.
    """
    z_axis = np.asarray(up, dtype=np.float64)
    z_axis = z_axis / np.linalg.norm(z_axis)
    candidates = [reference_x] if reference_x is not None else []
    candidates += [np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])]
    for candidate in candidates:
        x_axis = np.asarray(candidate, dtype=np.float64) - (candidate @ z_axis) * z_axis
        if np.linalg.norm(x_axis) > 1e-3:
            break
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return np.stack([x_axis, y_axis, z_axis])


def residual_tilt_deg(rotation: np.ndarray, true_up: np.ndarray) -> float:
    """Angle between the rotated true up and +z: what is left of the tilt after alignment."""
    rotated = rotation @ (true_up / np.linalg.norm(true_up))
    return float(np.degrees(np.arccos(np.clip(rotated[2], -1.0, 1.0))))


def floor_transform(floor: FloorPlane, reference_x: np.ndarray | None = None) -> np.ndarray:
    """4x4 transform from the input frame to the gravity frame: rotate up to +z, floor to z = 0."""
    transform = np.eye(4)
    transform[:3, :3] = gravity_rotation(floor.normal, reference_x)
    transform[2, 3] = floor.offset  # n · p + offset = 0 on the floor, and the new z is n · p
    return transform
