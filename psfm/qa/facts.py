"""A scene's 3D facts: the objects, cameras and room the question templates reason about.

Facts come from ground truth (``psfm.qa.sources``: world scenes, shard ``meta.json`` objects in the
common oriented-box format, annotation files) or from estimation (``psfm.qa.lifting``). Either way they
live in one frame: metric, z up, with the floor at ``floor_height`` (0 for the world and for lifted
facts; found from the annotations or depth for real scenes, ``psfm.qa.floors``), so "above", "height"
and "floor area" need no further context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from psfm.qa.polygons import polygon_area
from psfm.worlds.scene import OrientedBox

GROUND_TRUTH = "gt"
LIFTED = "lifted"


@dataclass(frozen=True)
class ObjectFact:
    """One object: its label, its box, and how much of it each view shows.

    Attributes:
        instance_id: the object's id in the instance masks (for lifted objects: the majority id of its
            points, kept for evaluation only; questions never depend on it).
        category: class name, e.g. ``"crate"``.
        color: colour name, or None when unknown (then the object cannot be named uniquely).
        box: gravity-aligned box in the facts frame.
        supported_by: instance id it rests on (0 = floor), None when unknown.
        confidence: 1 for ground truth; the lifting gate's score otherwise.
        pixels_per_view: [V] visible pixels in each view; empty when no masks were available.
    """

    instance_id: int
    category: str
    color: str | None
    box: OrientedBox
    supported_by: int | None = None
    confidence: float = 1.0
    pixels_per_view: tuple[int, ...] = ()

    @property
    def label(self) -> tuple[str | None, str]:
        return (self.color, self.category)

    @property
    def center(self) -> np.ndarray:
        return np.asarray(self.box.center, dtype=np.float64)


@dataclass(frozen=True)
class UnplacedObject:
    """An annotated object without a usable box (non-finite, degenerate, no box at all).

    It is never a referent, but it exists: it counts ("how many chairs?"), and it makes a name
    ambiguous ("the chair" when it is a second chair).
    """

    instance_id: int
    category: str
    color: str | None
    reason: str
    pixels_per_view: tuple[int, ...] = ()


@dataclass(frozen=True)
class CameraFact:
    """One view's camera in the facts frame: ``intrinsics`` [3, 3] pixels, ``cam_to_world`` [4, 4] OpenCV."""

    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    height: int
    width: int

    @property
    def center(self) -> np.ndarray:
        return self.cam_to_world[:3, 3]


@dataclass(frozen=True)
class SceneFacts:
    """Everything the templates may use about one scene.

    Attributes:
        scene_id: the shard key.
        objects: the objects (possibly with duplicate labels; templates refer only to unique ones).
        cameras: the views in capture order (appearance-order questions rely on that order).
        floor_polygon: [P, 2] counter-clockwise floor footprint, None when unknown.
        source: ``"gt"`` or ``"lifted"``.
        metric_scale: where metres come from (``gt``, ``sensor_depth``, ``depth_model:<name>``, ``none``).
        depths: optional per-view [H, W] z-depth in metres (0 = unknown), for point-level questions.
        masks: optional per-view [H, W] instance ids, for point-level questions.
        unplaced: annotated objects without a usable box (they count and make names ambiguous).
        floor_height: z of the floor in this frame; "above the floor" is measured from it.
        floor_source: where it came from (``world``, ``lifting``, ``annotation``, ``annotation_extent``,
            ``floor_box``, ``depth``, ``box_bottoms``, ``none``).
        room_source: where the floor polygon or area came from (``world``, ``lifting``,
            ``annotation_area``, ``annotation_polygon``, ``annotation_extent``, ``depth``,
            ``estimated_from_boxes``, ``none``).
        given_floor_area: the room's area as the annotation states it (m²), which room size answers
            with when given; else the polygon's area.
        annotated_counts: the annotation's own objects per category, when it states them.
        notes: per-scene tallies for the run's summary (boxes kept per reason, levelled, merged, ...).
        num_views: the scene's views (images), cameras or not; 0 when unknown (then counted from cameras/masks).
    """

    scene_id: str
    objects: tuple[ObjectFact, ...]
    cameras: tuple[CameraFact, ...]
    floor_polygon: np.ndarray | None
    source: str
    metric_scale: str
    depths: tuple[np.ndarray, ...] | None = None
    masks: tuple[np.ndarray, ...] | None = None
    unplaced: tuple[UnplacedObject, ...] = ()
    floor_height: float = 0.0
    floor_source: str = "frame"
    room_source: str = "none"
    given_floor_area: float | None = None
    annotated_counts: dict[str, int] | None = None
    notes: dict[str, float] = field(default_factory=dict)
    num_views: int = 0

    @property
    def floor_area(self) -> float | None:
        if self.given_floor_area is not None:
            return self.given_floor_area
        return None if self.floor_polygon is None else abs(polygon_area(self.floor_polygon))

    def instances(self, category: str) -> list[ObjectFact | UnplacedObject]:
        """Every annotated object of ``category``, placed or not."""
        return [o for o in (*self.objects, *self.unplaced) if o.category == category]

    def object(self, instance_id: int) -> ObjectFact | None:
        return next((o for o in self.objects if o.instance_id == instance_id), None)


def pixel_counts(
    masks: list[np.ndarray] | tuple[np.ndarray, ...], instance_ids: list[int]
) -> dict[int, tuple[int, ...]]:
    """Visible pixels of each instance in each view: ``{id: (count in view 0, count in view 1, ...)}``."""
    largest = max(instance_ids, default=0)
    per_view = [np.bincount(np.asarray(m, dtype=np.int64).ravel(), minlength=largest + 1) for m in masks]
    return {i: tuple(int(counts[i]) if i < len(counts) else 0 for counts in per_view) for i in instance_ids}
