"""From an annotated oriented box to the gravity-aligned, yaw-only box the templates reason about.

An annotation box is a centre, three side lengths and three unit axes (the columns of R). Which axis is
vertical is not fixed: ARKitScenes lists it third, ScanNet++ often first or second. The axis closest to
gravity (+z) is taken as the box's height, whatever its position, and the box's yaw is the direction of
the first of the other two.

A box whose vertical axis leaves gravity by at most ``LEVEL_TOLERANCE_DEG`` is used as annotated (its
axes snapped to vertical). A box tilted further (ScanNet's are, by a few degrees one by one) becomes the
smallest yaw-only box covering all eight of its corners: its footprint is the minimum-area rectangle of
the corners seen from above, its height their vertical extent. The tilt is reported, never hidden.

Boxes that cannot be placed at all (non-finite numbers, a side under 1 cm, axes that are not
orthonormal) come back with the reason; their objects still exist, and still count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from psfm.qa.polygons import convex_hull, min_area_rectangle
from psfm.worlds.scene import OrientedBox

MIN_SIDE_M = 0.01  # a box thinner than 1 cm is degenerate: nothing sensible can be asked about it
LEVEL_TOLERANCE_DEG = 2.0  # up to this tilt a box is taken as annotated; beyond it, levelled (covered)
UP_AXIS_NAMES = ("first", "second", "third")


@dataclass(frozen=True)
class Placement:
    """Where a box record landed.

    Attributes:
        box: the yaw-only box, None when the record cannot be placed.
        reason: why not (``box_not_finite``, ``box_degenerate``, ``box_axes_not_orthonormal``), else "".
        up_axis: which of the record's axes (0, 1, 2) was the vertical one.
        tilt_deg: angle between that axis and gravity.
        levelled: whether the box was replaced by the yaw-only box covering it (tilt above tolerance).
        upright_bottom, upright_top: centre minus / plus half the up axis' length: where the box's bottom
            and top would be if it stood upright about its centre. A tilted box's corners dip below (and rise
            above) the object it annotates, by metres for a tipped floor box, so floor estimates use these
            rather than the covering box's.
    """

    box: OrientedBox | None
    reason: str = ""
    up_axis: int = 2
    tilt_deg: float = 0.0
    levelled: bool = False
    upright_bottom: float = 0.0
    upright_top: float = 0.0


def _vector(value: Any, length: int) -> np.ndarray | None:
    if not isinstance(value, list) or len(value) != length:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    array = np.asarray(value, dtype=np.float64)
    return array if np.all(np.isfinite(array)) else None


def axes_matrix(value: Any) -> np.ndarray | None:
    """R [3, 3] (axes as columns) from ``normalized_axes``: three axes, or nine numbers axis after axis.

    Nine numbers reshaped (3, 3) give one axis per *row* (Rᵀ), the way ARKitScenes' tools read their
    ``normalizedAxes``; reading them as R instead would negate every yaw.
    """
    if isinstance(value, list) and len(value) == 9:
        value = [value[0:3], value[3:6], value[6:9]]
    if not isinstance(value, list) or len(value) != 3:
        return None
    columns = [_vector(axis, 3) for axis in value]
    if any(column is None for column in columns):
        return None
    return np.stack(columns, axis=1)


def _corners(center: np.ndarray, lengths: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The 8 corners [8, 3] of an oriented box."""
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    return (signs * lengths / 2) @ rotation.T + center


def covering_box(center: np.ndarray, lengths: np.ndarray, rotation: np.ndarray) -> OrientedBox:
    """The smallest yaw-only box holding every corner of a tilted box (exact: a rectangle's minimum-area
    enclosure is found among its hull's edge directions, and the vertical extent is the corners')."""
    corners = _corners(center, lengths, rotation)
    rectangle = min_area_rectangle(convex_hull(corners[:, :2]))
    low, high = float(corners[:, 2].min()), float(corners[:, 2].max())
    if rectangle is None:  # a footprint with no area (a vertical sliver): keep the annotated axes' yaw
        return OrientedBox(tuple(center.tolist()), (float(lengths[0]), float(lengths[1]), high - low), 0.0)
    centre = (float(rectangle.center[0]), float(rectangle.center[1]), (low + high) / 2)
    size = (float(rectangle.size[0]), float(rectangle.size[1]), high - low)
    return OrientedBox(centre, size, float(rectangle.angle))


def place_box(record: Any) -> Placement:
    """The yaw-only box of an oriented-box record ``{"centroid", "axes_lengths", "normalized_axes"}``."""
    if not isinstance(record, dict):
        return Placement(None, "object_without_box")
    center, lengths = _vector(record.get("centroid"), 3), _vector(record.get("axes_lengths"), 3)
    rotation = axes_matrix(record.get("normalized_axes"))
    if center is None or lengths is None or rotation is None:
        return Placement(None, "box_not_finite")
    if np.any(lengths < MIN_SIDE_M):
        return Placement(None, "box_degenerate")
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-3):
        return Placement(None, "box_axes_not_orthonormal")
    up = int(np.argmax(np.abs(rotation[2])))
    tilt = math.degrees(math.acos(min(1.0, abs(float(rotation[2, up])))))
    upright = {"upright_bottom": float(center[2] - lengths[up] / 2), "upright_top": float(center[2] + lengths[up] / 2)}
    if tilt > LEVEL_TOLERANCE_DEG:
        return Placement(covering_box(center, lengths, rotation), up_axis=up, tilt_deg=tilt, levelled=True, **upright)
    first, second = (k for k in range(3) if k != up)
    yaw = math.atan2(rotation[1, first], rotation[0, first])
    size = (float(lengths[first]), float(lengths[second]), float(lengths[up]))
    return Placement(OrientedBox(tuple(center.tolist()), size, yaw), up_axis=up, tilt_deg=tilt, **upright)
