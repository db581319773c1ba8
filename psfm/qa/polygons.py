"""Planar geometry the QA engine needs on floor footprints: hulls, areas, clipping, minimum-area rectangles.

numpy only (no scipy, no shapely) so ``psfm.qa`` imports with the core dependencies. Polygons are
``[P, 2]`` float arrays of vertices in counter-clockwise order, without repeating the first vertex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean [N]: strictly inside the convex counter-clockwise ``polygon`` [P, 2]."""
    inside = np.ones(len(points), dtype=bool)
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        inside &= (b[0] - a[0]) * (points[:, 1] - a[1]) - (b[1] - a[1]) * (points[:, 0] - a[0]) > 1e-12
    return inside


def _discard_interior(points: np.ndarray, directions: int = 16) -> np.ndarray:
    """Akl-Toussaint filter: drop points strictly inside the polygon of extreme points in a few directions.

    Such points cannot be hull vertices, and on dense clouds they are almost all of them, so the
    Python loop of the monotone chain only sees the few near the boundary.
    """
    angles = np.linspace(0, 2 * np.pi, directions, endpoint=False)
    extremes = np.unique(np.argmax(points @ np.stack([np.cos(angles), np.sin(angles)]), axis=0))
    polygon = points[extremes]
    if len(polygon) < 3:
        return points
    order = np.argsort(np.arctan2(*(polygon - polygon.mean(axis=0)).T[::-1]))
    return points[~_inside_polygon(points, polygon[order])]


def convex_hull(points: np.ndarray, grid: float = 0.0) -> np.ndarray:
    """Counter-clockwise convex hull ``[P, 2]`` of ``points`` [N, 2] (Andrew's monotone chain).

    Args:
        points: [N, 2] planar points.
        grid: when > 0, points are first snapped to this grid (metres) and deduplicated, which bounds
            the Python loop on dense back-projected clouds without moving the hull by more than ``grid``.

    Returns:
        The hull vertices; fewer than 3 rows when the points are collinear or fewer than 3.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if grid > 0:
        points = np.round(points / grid) * grid
    if len(points) > 3:
        points = _discard_interior(points)
    points = np.unique(points, axis=0)  # also sorts lexicographically, as the monotone chain needs
    if len(points) < 3:
        return points
    lower: list[np.ndarray] = []
    for p in points:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in points[::-1]:
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def polygon_area(polygon: np.ndarray) -> float:
    """Area of a simple polygon [P, 2] (shoelace); positive for counter-clockwise vertices."""
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def clip_convex(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Intersection of convex polygon ``subject`` with convex counter-clockwise ``clip`` (Sutherland-Hodgman)."""
    output = [np.asarray(p, dtype=np.float64) for p in subject]
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        edge = b - a
        inputs, output = output, []
        if not inputs:
            break
        side = [edge[0] * (p[1] - a[1]) - edge[1] * (p[0] - a[0]) for p in inputs]  # >= 0: inside
        for j, current in enumerate(inputs):
            previous, side_prev, side_cur = inputs[j - 1], side[j - 1], side[j]
            if side_cur >= 0:
                if side_prev < 0:
                    output.append(previous + (current - previous) * side_prev / (side_prev - side_cur))
                output.append(current)
            elif side_prev >= 0:
                output.append(previous + (current - previous) * side_prev / (side_prev - side_cur))
    return np.array(output).reshape(-1, 2)


@dataclass(frozen=True)
class Rectangle:
    """A rotated rectangle: ``center`` [2], full ``size`` [2] along its axes, axis 0 at ``angle`` radians."""

    center: np.ndarray
    size: np.ndarray
    angle: float


def min_area_rectangle(hull: np.ndarray) -> Rectangle | None:
    """The smallest-area rectangle enclosing a convex polygon [P, 2] (rotating calipers).

    One side of the optimal rectangle is collinear with a hull edge, so trying every edge direction
    is exact. Returns None for degenerate hulls (fewer than 3 vertices); callers fall back to PCA.
    """
    if len(hull) < 3:
        return None
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.arctan2(edges[:, 1], edges[:, 0]) % (np.pi / 2)  # a rectangle repeats every 90 degrees
    angles = np.unique(np.round(angles, 9))
    cos, sin = np.cos(angles), np.sin(angles)
    # hull in each candidate frame: u = p . axis0, v = p . axis1    [A, P]
    u = hull[:, 0][None] * cos[:, None] + hull[:, 1][None] * sin[:, None]
    v = -hull[:, 0][None] * sin[:, None] + hull[:, 1][None] * cos[:, None]
    spans_u, spans_v = u.max(1) - u.min(1), v.max(1) - v.min(1)
    best = int(np.argmin(spans_u * spans_v))
    mid_u, mid_v = (u[best].max() + u[best].min()) / 2, (v[best].max() + v[best].min()) / 2
    c, s = cos[best], sin[best]
    center = np.array([c * mid_u - s * mid_v, s * mid_u + c * mid_v])
    return Rectangle(center, np.array([spans_u[best], spans_v[best]]), float(angles[best]))


def rectangle_corners(center: np.ndarray, size: np.ndarray, angle: float) -> np.ndarray:
    """The 4 corners [4, 2] of a rotated rectangle, counter-clockwise."""
    c, s = np.cos(angle), np.sin(angle)
    half = np.asarray(size, dtype=np.float64) / 2
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(center, dtype=np.float64)[:2]
