"""Ground-truth facts: from a procedural-world ``Scene``, a shard's ``meta.json`` annotations, or annotation files.

Objects come as oriented boxes (``centroid``, full ``axes_lengths``, ``normalized_axes``: the three unit
box axes; any spelling of ``psfm.qa.schema``). Every annotated object is kept:

* exact duplicates (same label, same box) are merged into one and counted;
* ``wall``, ``floor`` and ``ceiling`` are room structure: they place the floor and bound the room, and
  are never asked about;
* the others are placed as yaw-only boxes by ``psfm.qa.placement`` (any axis order; a tilted box levelled
  to the box covering it), or, when their box is unusable, kept *unplaced*: never a referent, but counted
  ("how many chairs?") and weighed when deciding whether a name is unique.

Each scene's ``notes`` tally what happened (for ``summary.json``); the floor and room come from
``psfm.qa.floors`` with their sources.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from psfm.qa.annotations import room_of
from psfm.qa.facts import GROUND_TRUTH, CameraFact, ObjectFact, SceneFacts, UnplacedObject, pixel_counts
from psfm.qa.floors import FLOOR_LABELS, STRUCTURE_LABELS, DepthViews, find_floor, find_room
from psfm.qa.placement import UP_AXIS_NAMES, place_box
from psfm.qa.polygons import rectangle_corners
from psfm.qa.reasons import SkipLog
from psfm.qa.schema import normalize_box, snake_keys
from psfm.worlds.render import RenderedView
from psfm.worlds.scene import OrientedBox, Scene

DUPLICATE_DECIMALS = 4  # boxes equal to 0.1 mm (and 1e-4 in their axes) are the same box


def room_floor(extent_min: Sequence[float], extent_max: Sequence[float]) -> np.ndarray:
    """Floor polygon [4, 2] of an axis-aligned room extent."""
    lower, upper = np.asarray(extent_min[:2], dtype=np.float64), np.asarray(extent_max[:2], dtype=np.float64)
    return rectangle_corners((lower + upper) / 2, upper - lower, 0.0)


def facts_from_scene(scene: Scene, views: Sequence[RenderedView] | None = None) -> SceneFacts:
    """Exact facts of a world scene; ``views`` (its renders) add visibility, depth and masks."""
    masks = [view.instance for view in views] if views is not None else None
    counts = pixel_counts(masks, [o.instance_id for o in scene.objects]) if masks is not None else {}
    objects = tuple(
        ObjectFact(o.instance_id, o.category, o.color_name, o.box, o.supported_by, 1.0, counts.get(o.instance_id, ()))
        for o in scene.objects
    )
    cameras = tuple(
        CameraFact(np.asarray(c.intrinsics, np.float64), np.asarray(c.cam_to_world, np.float64), c.height, c.width)
        for c in scene.cameras
    )
    lower, upper = scene.room.bounds
    return SceneFacts(
        scene.scene_id,
        objects,
        cameras,
        room_floor(lower, upper),
        GROUND_TRUTH,
        "gt",
        depths=tuple(view.depth for view in views) if views is not None else None,
        masks=tuple(masks) if masks is not None else None,
        floor_source="world",
        room_source="world",
    )


def _mask_id(value: Any) -> bool:
    """Whether ``value`` can be an id in the instance masks (negative ids mark objects the masks do not show)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rounded(value: Any) -> Any:
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, DUPLICATE_DECIMALS)
    return value


def duplicate_key(category: str, color: Any, box: Any) -> str:
    """What makes two records the same object: label and box (numbers rounded to 0.1 mm)."""
    return json.dumps([category, color, _rounded(box)], sort_keys=True, default=str)


@dataclass
class SceneObjects:
    """A scene's objects sorted by what could be done with them, and the tally of it."""

    placed: list[ObjectFact] = field(default_factory=list)
    unplaced: list[UnplacedObject] = field(default_factory=list)
    structure: list[tuple[str, OrientedBox]] = field(default_factory=list)
    bottoms: list[float] = field(default_factory=list)  # placed objects' upright bottoms, for the floor
    floor_tops: list[float] = field(default_factory=list)  # upright tops of boxes labelled floor
    notes: Counter = field(default_factory=Counter)
    max_tilt_deg: float = 0.0


def objects_from_records(
    records: Sequence[Any], counts: dict[int, tuple[int, ...]], skips: SkipLog, where: str
) -> SceneObjects:
    """Every object of ``meta.json``-shaped records, placed or not; only objects without a category are dropped.

    Raises:
        SchemaError: a box in a spelling ``psfm.qa.schema`` does not know, naming the scene and the field.
    """
    out, seen, used_ids = SceneObjects(), set(), set()
    for index, record in enumerate(records):
        category = record.get("category") if isinstance(record, dict) else None
        if not isinstance(category, str) or not category.strip():
            skips.add("object_without_category", f"{where}: objects[{index}]")
            continue
        category, color = category.strip(), record.get("color") if isinstance(record.get("color"), str) else None
        raw_box = record.get("box")
        box = normalize_box(raw_box, f"{where}: objects[{index}].box") if isinstance(raw_box, dict) else raw_box
        key = duplicate_key(category, color, box)
        out.notes["objects/annotated"] += 1
        if key in seen:
            out.notes["objects/merged_duplicates"] += 1
            skips.add("duplicate_box_merged", f"{where}: objects[{index}] ({category})")
            continue
        seen.add(key)
        instance_id = record.get("instance_id")
        if not _mask_id(instance_id) or instance_id in used_ids:
            if instance_id is not None:
                out.notes["objects/unlinked_instance_id"] += 1  # not linkable to the masks: visibility unknown
            instance_id = -1 - index
        used_ids.add(instance_id)
        placement = place_box(box)
        if category.lower() in STRUCTURE_LABELS:
            out.notes["objects/structure"] += 1
            if placement.box is not None:
                out.structure.append((category.lower(), placement.box))
                if category.lower() in FLOOR_LABELS:
                    out.floor_tops.append(placement.upright_top)
            continue
        pixels = counts.get(instance_id, ())
        if placement.box is None:
            out.notes[f"objects/unplaced/{placement.reason}"] += 1
            skips.add(placement.reason, f"{where}: objects[{index}] ({category})")
            out.unplaced.append(UnplacedObject(instance_id, category, color, placement.reason, pixels))
            continue
        out.notes["objects/placed"] += 1
        out.notes[f"objects/placed/up_axis_{UP_AXIS_NAMES[placement.up_axis]}"] += 1
        if placement.levelled:
            out.notes["objects/placed/levelled"] += 1
        out.max_tilt_deg = max(out.max_tilt_deg, placement.tilt_deg)
        out.bottoms.append(placement.upright_bottom)
        support = record.get("supported_by")
        support = support if isinstance(support, int) and not isinstance(support, bool) else None
        out.placed.append(ObjectFact(instance_id, category, color, placement.box, support, 1.0, pixels))
    return out


def room_record(room: Any, where: str) -> dict[str, Any] | None:
    """A ``room`` record in canonical keys (``floor_polygon``, ``floor_area``, ``floor_height``, extents)."""
    return room_of(snake_keys(room), where) if isinstance(room, dict) else None


def facts_from_meta(
    meta: dict[str, Any],
    skips: SkipLog,
    masks: Sequence[np.ndarray] | None = None,
    depths: Sequence[np.ndarray] | None = None,
) -> SceneFacts:
    """Ground-truth facts of a shard scene from its validated ``meta.json`` record (``SceneMeta.raw``).

    Args:
        meta: the record; ``objects`` / ``room`` may be null (then only camera questions remain).
            ``source.object_counts`` (written by ``psfm convert boxes``) are the annotation's own counts.
        skips: where objects that cannot be referents are counted.
        masks, depths: optional decoded per-view instance masks and metric depths.

    Raises:
        SchemaError: an object's box or the room in a spelling psfm does not know.
    """
    where = str(meta.get("scene_id", "?"))
    records = meta.get("objects") or []
    ids = [r["instance_id"] for r in records if isinstance(r, dict) and _mask_id(r.get("instance_id"))]
    counts = pixel_counts(list(masks), ids) if masks is not None else {}
    objects = objects_from_records(records, counts, skips, where)
    cameras = ()
    if meta.get("pose_source", "none") != "none" and meta.get("views"):
        height, width = meta["image_size"]
        cameras = tuple(
            CameraFact(
                np.asarray(v["intrinsics"], np.float64), np.asarray(v["cam_to_world"], np.float64), height, width
            )
            for v in meta["views"]
        )
    views = None
    if depths is not None and cameras and len(depths) == len(cameras):
        views = DepthViews(depths, cameras, masks)
    room = room_record(meta.get("room"), f"{where}: room")
    floor = find_floor(room, objects.floor_tops, objects.bottoms, views)
    found = find_room(room, [o.box for o in objects.placed] + [box for _, box in objects.structure], views)
    if found.source == "none":
        skips.add("scene_without_floor", where)
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    annotated = source.get("object_counts")
    notes = {**objects.notes, "max_tilt_deg": objects.max_tilt_deg}
    return SceneFacts(
        where,
        tuple(objects.placed),
        cameras,
        found.polygon,
        GROUND_TRUTH,
        str(meta.get("metric_scale", "none")),
        depths=tuple(depths) if depths is not None else None,
        masks=tuple(masks) if masks is not None else None,
        unplaced=tuple(objects.unplaced),
        floor_height=floor.height,
        floor_source=floor.source,
        room_source=found.source,
        given_floor_area=found.area,
        annotated_counts=dict(annotated) if isinstance(annotated, dict) else None,
        notes=notes,
        num_views=len(meta.get("views") or []),
    )
