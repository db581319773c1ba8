"""Where a real scene's floor is, and how big its room is, from what its annotations and depth say.

Real annotation frames put the floor anywhere (ScanNet's near z = -1 m), so "how high above the floor"
needs the floor found, not assumed. In order of trust:

1. the annotation says so: ``room.floor_height``, or the bottom of psfm's ``room.extent_min``;
2. a box labelled ``floor``: its top, where things stand (taken upright about its centre: a floor box
   tipped by a degree rises metres at its far corners);
3. depth, when the scene has it with cameras: a RANSAC floor plane (``psfm.qa.lifting.gravity``) whose
   normal lies within ``DEPTH_MAX_TILT_DEG`` of +z (the annotations' up), its height under the cameras;
4. the boxes themselves: the ``BOTTOM_PERCENTILE``-th percentile of their bottoms (most furniture stands
   on the floor; a low percentile ignores a box annotated a little under it, a median would follow
   shelves and tables); the lowest bottom with fewer than ``MIN_BOXES`` boxes. A tilted box's bottom is
   taken upright about its centre (``Placement.upright_bottom``): the corners of a box tipped by a few
   degrees dip below the object, the covering box's bottom with them.

The room: an annotated polygon, extent or area (a room size given as one number, VSI-Bench's
``room_size``, is the answer as given); else the room footprint of the depth points
(``psfm.qa.lifting.room``); else the minimum-area rectangle of every box's footprint, walls included,
flagged ``estimated_from_boxes`` (furniture rarely lines every wall, so it is smaller than the room:
room-size questions skip it unless ``generation.room_size_from_boxes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from psfm.geometry import backproject
from psfm.qa.boxes import footprint
from psfm.qa.facts import CameraFact
from psfm.qa.lifting.gravity import fit_floor
from psfm.qa.lifting.room import room_footprint
from psfm.qa.lifting.views import camera_up
from psfm.qa.polygons import convex_hull, min_area_rectangle, polygon_area, rectangle_corners
from psfm.worlds.scene import OrientedBox

STRUCTURE_LABELS = ("wall", "floor", "ceiling")  # room structure: used for the floor and room, never a referent
FLOOR_LABELS = ("floor",)
BOTTOM_PERCENTILE = 10.0
MIN_BOXES = 3
DEPTH_MAX_TILT_DEG = 10.0
DEPTH_POINTS = 20_000  # depth points used per scene, spread over the views
ESTIMATED_FROM_BOXES = "estimated_from_boxes"


@dataclass(frozen=True)
class Floor:
    height: float
    source: str


@dataclass(frozen=True)
class Room:
    polygon: np.ndarray | None
    area: float | None
    source: str


@dataclass(frozen=True)
class DepthViews:
    """A scene's metric depth with its cameras (and masks, whose 0 marks room structure), for the estimates."""

    depths: Sequence[np.ndarray]
    cameras: Sequence[CameraFact]
    masks: Sequence[np.ndarray] | None = None

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Back-projected points [N, 3] (structure only when masks exist), and the view of each [N]."""
        total = sum(int(np.count_nonzero(d > 0)) for d in self.depths)
        step = max(1, int(np.sqrt(total / DEPTH_POINTS)))
        chunks, ids = [], []
        for index, (depth, camera) in enumerate(zip(self.depths, self.cameras, strict=True)):
            keep = np.zeros(depth.shape, dtype=bool)
            keep[::step, ::step] = True
            keep &= depth > 0
            if self.masks is not None:
                keep &= np.asarray(self.masks[index]) == 0
            chunks.append(backproject(depth, camera.intrinsics, camera.cam_to_world)[keep])
            ids.append(np.full(int(keep.sum()), index))
        if not chunks:
            return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
        return np.concatenate(chunks), np.concatenate(ids)


def floor_from_depth(views: DepthViews) -> Floor | None:
    """The floor plane of the depth points, when it is level with the annotations' +z."""
    points, view_ids = views.points()
    centers = np.array([c.center for c in views.cameras])
    ups = np.array([camera_up(c.cam_to_world) for c in views.cameras])
    plane = fit_floor(points, centers, ups, np.random.default_rng(0), min_inliers=50, view_ids=view_ids)
    if plane is None or plane.normal[2] < np.cos(np.deg2rad(DEPTH_MAX_TILT_DEG)):
        return None
    x, y = centers[:, :2].mean(axis=0)
    return Floor(float(-(plane.offset + plane.normal[0] * x + plane.normal[1] * y) / plane.normal[2]), "depth")


def find_floor(
    room: dict[str, Any] | None,
    floor_tops: Sequence[float],
    bottoms: Sequence[float],
    views: DepthViews | None = None,
) -> Floor:
    """The floor height and its source, in the order of trust above.

    Args:
        room: the annotation's canonical room record.
        floor_tops: tops of the boxes labelled floor; bottoms: the objects' box bottoms (both upright).
        views: depth and cameras, when the scene has them.
    """
    room = room or {}
    height = room.get("floor_height")
    if isinstance(height, (int, float)) and np.isfinite(height):
        return Floor(float(height), "annotation")
    extent = room.get("extent_min")
    if isinstance(extent, list) and len(extent) == 3 and isinstance(extent[2], (int, float)) and np.isfinite(extent[2]):
        return Floor(float(extent[2]), "annotation_extent")
    if len(floor_tops):
        return Floor(float(np.median(floor_tops)), "floor_box")
    if views is not None:
        found = floor_from_depth(views)
        if found is not None:
            return found
    bottoms = np.asarray(bottoms, dtype=np.float64)
    if len(bottoms) >= MIN_BOXES:
        return Floor(float(np.percentile(bottoms, BOTTOM_PERCENTILE)), "box_bottoms")
    if len(bottoms):
        return Floor(float(bottoms.min()), "box_bottoms")
    return Floor(0.0, "none")


def _rectangle(points: np.ndarray) -> np.ndarray | None:
    rectangle = min_area_rectangle(convex_hull(points))
    return None if rectangle is None else rectangle_corners(rectangle.center, rectangle.size, rectangle.angle)


def find_room(
    room: dict[str, Any] | None,
    boxes: Sequence[OrientedBox],
    views: DepthViews | None = None,
) -> Room:
    """The floor polygon and/or area and its source, in the order above (``boxes`` include walls)."""
    room = room or {}
    area = room.get("floor_area")
    area = float(area) if isinstance(area, (int, float)) and np.isfinite(area) and area > 0 else None
    polygon = room.get("floor_polygon")
    if polygon is not None:
        polygon = np.asarray(polygon, dtype=np.float64)[:, :2]
        if polygon_area(polygon) < 0:
            polygon = polygon[::-1]
        return Room(polygon, area, "annotation_area" if area is not None else "annotation_polygon")
    lower, upper = room.get("extent_min"), room.get("extent_max")
    if isinstance(lower, list) and isinstance(upper, list) and len(lower) == len(upper) == 3:
        lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        if np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(upper[:2] - lower[:2] > 0.01):
            rectangle = rectangle_corners((lower[:2] + upper[:2]) / 2, upper[:2] - lower[:2], 0.0)
            return Room(rectangle, area, "annotation_area" if area is not None else "annotation_extent")
    if area is not None:
        return Room(None, area, "annotation_area")
    if views is not None:
        points, _ = views.points()
        polygon = room_footprint(points) if len(points) else None
        if polygon is not None and abs(polygon_area(polygon)) > 0.5:
            return Room(polygon, None, "depth")
    if len(boxes) >= MIN_BOXES:
        polygon = _rectangle(np.concatenate([footprint(box) for box in boxes]))
        if polygon is not None:
            return Room(polygon, None, ESTIMATED_FROM_BOXES)
    return Room(None, None, "none")
