"""A gravity-aligned, yaw-only box around an object's points, in the gravity frame (z up, floor z = 0).

The footprint's minimum-area rectangle gives yaw and horizontal extent: a box seen from one side
shows two faces, an L-shaped footprint whose minimum-area rectangle is already the full base. When
the footprint has no area (a single visible face seen edge-on, or very few points), PCA of the
horizontal coordinates gives the yaw instead.

Round objects (cylinders, spheres, cones) seen from one side show only the near half of their
footprint, and its rectangle is half as deep as the object. When the footprint's outline is
convincingly an arc of a circle (many hull vertices, small residual, wide angular coverage), the
circle is completed and the box is its bounding square: a purely geometric test, no category prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psfm.qa.polygons import Rectangle, convex_hull, min_area_rectangle
from psfm.worlds.scene import OrientedBox

HULL_GRID_M = 0.005  # footprint points are snapped to 5 mm before the hull: same hull, bounded work
MIN_FOOTPRINT_AREA_M2 = 1e-4
CIRCLE_MIN_VERTICES = 8
CIRCLE_MAX_RESIDUAL = 0.05  # RMS distance of hull vertices to the circle, as a fraction of the radius
CIRCLE_MIN_COVERAGE_DEG = 90.0
CIRCLE_MIN_INLIERS = 0.5  # share of hull vertices the arc must hold
CIRCLE_HYPOTHESES = 300
NOISE_OVERSHOOT = 1.0
MIN_SIDE_M = 0.02


@dataclass(frozen=True)
class FittedBox:
    """A fitted box and how: ``method`` is ``circle``, ``min_area_rectangle`` or ``pca``."""

    box: OrientedBox
    method: str


def _pca_rectangle(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    centered = xy - xy.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(centered.T) if len(xy) > 2 else np.eye(2))
    major = vectors[:, -1]
    angle = float(np.arctan2(major[1], major[0]))
    axes = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    local = xy @ axes.T  # [N, 2] along (major, minor)
    low, high = local.min(axis=0), local.max(axis=0)
    center = ((low + high) / 2) @ axes
    return center, high - low, angle


def fit_circle(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Algebraic (Kasa) circle through ``points`` [N, 2]: centre [2], radius, RMS radial residual."""
    design = np.column_stack([points, np.ones(len(points))])
    target = -(points**2).sum(axis=1)
    (d, e, f), *_ = np.linalg.lstsq(design, target, rcond=None)
    center = np.array([-d / 2, -e / 2])
    radius = float(np.sqrt(max(center @ center - f, 0.0)))
    residual = float(np.sqrt(np.mean((np.linalg.norm(points - center, axis=1) - radius) ** 2)))
    return center, radius, residual


def _circles_through(triples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circumcircles of point triples [T, 3, 2]: centres [T, 2] and radii [T] (inf for collinear triples)."""
    a, b, c = triples[:, 0], triples[:, 1], triples[:, 2]
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1]) + c[:, 0] * (a[:, 1] - b[:, 1]))
    sa, sb, sc = (a**2).sum(1), (b**2).sum(1), (c**2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d
        uy = (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d
    centers = np.stack([ux, uy], axis=1)
    radii = np.linalg.norm(a - centers, axis=1)
    radii[~np.isfinite(radii)] = np.inf
    return centers, radii


def rectangle_support(hull: np.ndarray, rectangle: Rectangle) -> int:
    """How many hull vertices [P, 2] lie on the rectangle's boundary (within the circle tolerance)."""
    c, s = np.cos(rectangle.angle), np.sin(rectangle.angle)
    local = (hull - rectangle.center) @ np.array([[c, -s], [s, c]])  # [P, 2] in the rectangle's axes
    gap = np.min(np.abs(np.abs(local) - rectangle.size / 2), axis=1)
    return int(np.count_nonzero(gap <= max(CIRCLE_MAX_RESIDUAL * float(rectangle.size.min()) / 2, HULL_GRID_M)))


def round_footprint(
    hull: np.ndarray, rectangle: Rectangle, rng: np.random.Generator
) -> tuple[np.ndarray, float] | None:
    """``(centre, radius)`` when the footprint outline [P, 2] is largely an arc of a circle, else None.

    An object seen from one side has an outline that is an arc on its near side and, elsewhere, the
    boundary of what was visible, which lies *inside* the circle. So: RANSAC over circles through
    three hull vertices, keeping circles that contain the whole hull, scored by the vertices on
    them; the best must hold ``CIRCLE_MIN_INLIERS`` of the vertices over ``CIRCLE_MIN_COVERAGE_DEG``
    of arc, be no wider than twice the footprint rectangle's longest side (a straight edge fits an
    enormous circle), and explain more vertices than the minimum-area rectangle does (a box's
    outline lies on its rectangle; a half-seen cylinder's arc touches it at three points only).
    """
    longest_side = float(rectangle.size.max())
    if len(hull) < CIRCLE_MIN_VERTICES:
        return None
    triples = rng.choice(len(hull), size=(CIRCLE_HYPOTHESES, 3))
    triples = triples[
        (triples[:, 0] != triples[:, 1]) & (triples[:, 1] != triples[:, 2]) & (triples[:, 0] != triples[:, 2])
    ]
    centers, radii = _circles_through(hull[triples])
    finite = np.isfinite(radii)
    centers, radii = centers[finite], radii[finite]
    if len(radii) == 0:
        return None
    distances = np.linalg.norm(hull[None] - centers[:, None], axis=2)  # [T, P]
    tolerance = np.maximum(CIRCLE_MAX_RESIDUAL * radii, HULL_GRID_M)[:, None]
    contains = np.all(distances <= radii[:, None] + tolerance, axis=1) & (radii <= longest_side)
    on_circle = np.abs(distances - radii[:, None]) <= tolerance
    scores = np.where(contains, on_circle.sum(axis=1), 0)
    best = int(np.argmax(scores))
    needed = max(CIRCLE_MIN_VERTICES, CIRCLE_MIN_INLIERS * len(hull), rectangle_support(hull, rectangle) + 1)
    if scores[best] < needed:
        return None
    arc = hull[on_circle[best]]
    center, radius, _ = fit_circle(arc)
    angles = np.sort(np.arctan2(arc[:, 1] - center[1], arc[:, 0] - center[0]))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi]))
    if np.degrees(2 * np.pi - gaps.max()) < CIRCLE_MIN_COVERAGE_DEG or radius > longest_side:
        return None
    return center, radius


def fit_box(points: np.ndarray, margin: float = 0.0, floor_snap: float = 0.0, noise: float = 0.0) -> FittedBox | None:
    """Box around ``points`` [N, 3] (gravity frame); None when the points have no extent.

    Args:
        points: the object's points.
        margin: metres added to every horizontal side (of rectangles: a circle is fitted to the
            near-side arc, which erosion leaves in place) and to the top: the erosion of the mask
            removed a band of about this width from the visible silhouette.
        floor_snap: a bottom this close to the floor (z = 0) is extended down to it: objects rest on
            something, and the lowest band of a floor-standing object is hidden by the erosion.
    """
    if len(points) < 3:
        return None
    xy = points[:, :2]
    hull = convex_hull(xy, grid=HULL_GRID_M)
    rectangle = min_area_rectangle(hull)
    rng = np.random.default_rng(len(points))  # deterministic per input
    circle = round_footprint(hull, rectangle, rng) if rectangle is not None else None
    if circle is not None:
        center, size, method = circle[0], np.full(2, 2 * circle[1]), "circle"
        angle = rectangle.angle if rectangle is not None else 0.0
    elif rectangle is not None and np.prod(rectangle.size) > MIN_FOOTPRINT_AREA_M2:
        center, size, angle, method = rectangle.center, rectangle.size, rectangle.angle, "min_area_rectangle"
    else:
        center, size, angle = _pca_rectangle(xy)
        method = "pca"
    low, high = float(points[:, 2].min()), float(points[:, 2].max())
    if 0.0 < low < floor_snap:
        low = 0.0
    high += margin
    # a circle is fitted to the near-side arc, i.e. to surface points that erosion does not move
    size = np.asarray(size, dtype=np.float64) + (0.0 if method == "circle" else 2 * margin)
    if high - low <= 0 or np.max(size) <= 0:
        return None
    size = np.maximum(size, MIN_SIDE_M)  # a face seen edge-on has no depth: keep a sliver, let gating judge
    box = OrientedBox(
        (float(center[0]), float(center[1]), (low + high) / 2), (float(size[0]), float(size[1]), high - low), angle
    )
    return FittedBox(box, method)
