"""The room's floor footprint from room-structure points (floor, walls, ceiling) in the gravity frame.

Walls bound the room, so the footprint is a rectangle aligned with the minimum-area rectangle of
the points' hull, with sides at robust percentiles (so a few noisy wall points do not inflate it).
This suits the box-shaped rooms of the world and most scans; an L-shaped room is overestimated
(its convex rectangle), which is where an alpha shape would be needed.
"""

from __future__ import annotations

import numpy as np

from psfm.qa.polygons import convex_hull, min_area_rectangle, rectangle_corners

ROBUST_PERCENTILE = 0.5
MIN_POINTS = 100


def room_footprint(points: np.ndarray) -> np.ndarray | None:
    """Floor polygon [4, 2] counter-clockwise, or None with too few points."""
    if len(points) < MIN_POINTS:
        return None
    xy = points[:, :2]
    rectangle = min_area_rectangle(convex_hull(xy, grid=0.02))
    if rectangle is None:
        return None
    c, s = np.cos(rectangle.angle), np.sin(rectangle.angle)
    axes = np.array([[c, s], [-s, c]])
    local = xy @ axes.T  # [N, 2] along the rectangle's axes
    low = np.percentile(local, ROBUST_PERCENTILE, axis=0)
    high = np.percentile(local, 100 - ROBUST_PERCENTILE, axis=0)
    return rectangle_corners(((low + high) / 2) @ axes, high - low, rectangle.angle)
