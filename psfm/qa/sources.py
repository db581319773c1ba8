"""Ground-truth facts: from a procedural-world ``Scene``, a shard's ``meta.json`` annotations, or box files.

Shard annotations and box files hold boxes in the common oriented-box format (``centroid``, full
``axes_lengths``, ``normalized_axes``: the three unit box axes, i.e. the columns of R; z up).
Anything this engine cannot answer about exactly is dropped here with a counted reason: non-finite
or zero-size boxes, boxes tilted off gravity (questions assume yaw-only boxes), missing categories.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from psfm.qa.facts import GROUND_TRUTH, CameraFact, ObjectFact, SceneFacts, pixel_counts
from psfm.qa.polygons import rectangle_corners
from psfm.qa.reasons import SkipLog
from psfm.worlds.render import RenderedView
from psfm.worlds.scene import OrientedBox, Scene

MIN_SIDE_M = 0.01  # a box thinner than 1 cm is degenerate: nothing sensible can be asked about it
MAX_TILT_DEG = 2.0  # boxes whose third axis leaves vertical by more than this are not yaw-only


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
    )


def _finite_vector(value: Any, length: int) -> np.ndarray | None:
    if not isinstance(value, list) or len(value) != length:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    array = np.asarray(value, dtype=np.float64)
    return array if np.all(np.isfinite(array)) else None


def box_from_record(record: Any) -> tuple[OrientedBox | None, str]:
    """Parse one oriented-box record; returns ``(box, "")`` or ``(None, reason)``.

    ``normalized_axes`` is either three lists (one unit axis each, the columns of R) or those nine
    numbers flat, axis after axis: ``reshape(3, 3)`` gives one axis per row, i.e. R transposed (the
    way ARKitScenes' tools read their ``normalizedAxes``). A transposed R would negate every yaw.
    """
    if not isinstance(record, dict):
        return None, "object_without_box"
    centroid = _finite_vector(record.get("centroid"), 3)
    lengths = _finite_vector(record.get("axes_lengths"), 3)
    axes = record.get("normalized_axes")
    if isinstance(axes, list) and len(axes) == 9:
        axes = [axes[0:3], axes[3:6], axes[6:9]]
    columns = [_finite_vector(a, 3) for a in axes] if isinstance(axes, list) and len(axes) == 3 else None
    if centroid is None or lengths is None or columns is None or any(c is None for c in columns):
        return None, "box_not_finite"
    if np.any(lengths < MIN_SIDE_M):
        return None, "box_degenerate"
    rotation = np.stack(columns, axis=1)
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-3):
        return None, "box_axes_not_orthonormal"
    if abs(rotation[2, 2]) < math.cos(math.radians(MAX_TILT_DEG)):
        return None, "box_not_gravity_aligned"
    yaw = math.atan2(rotation[1, 0], rotation[0, 0])
    return OrientedBox(tuple(centroid.tolist()), tuple(lengths.tolist()), yaw), ""


def _mask_id(value: Any) -> bool:
    """Whether ``value`` can be an id in the instance masks (negative ids mark objects the masks do not show)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_box_file(path: str | Path) -> list[dict[str, Any]]:
    """Object records (the ``meta.json`` shape, for ``objects_from_records``) of a standalone box file.

    The file is a JSON list of ``{"label": str, "centroid": [3], "axes_lengths": [3],
    "normalized_axes": [9] or [3][3]}`` with optional ``"instance_id"`` (its id in the shard's
    instance masks; without one the object's visibility is unknown and it gets a negative id) and
    ``"color"``. Mistakes in that schema raise; boxes that are merely unusable (non-finite,
    degenerate, tilted) are left for ``objects_from_records`` to skip and count, as in ``meta.json``.

    Raises:
        ValueError: naming the file, the entry and the field.
    """
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: must hold a JSON list of boxes, not a {type(entries).__name__}")
    records, seen = [], set()
    for index, entry in enumerate(entries):
        where = f"{path}: [{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object with label, centroid, axes_lengths, normalized_axes")
        if not isinstance(entry.get("label"), str):
            raise ValueError(f"{where}.label must be a string, got {entry.get('label')!r}")
        instance_id = entry.get("instance_id", -1 - index)
        if "instance_id" in entry and (not _mask_id(instance_id) or instance_id in seen):
            raise ValueError(f"{where}.instance_id must be a distinct non-negative integer, got {instance_id!r}")
        if entry.get("color") is not None and not isinstance(entry["color"], str):
            raise ValueError(f"{where}.color must be a string, got {entry['color']!r}")
        seen.add(instance_id)
        box = {key: entry.get(key) for key in ("centroid", "axes_lengths", "normalized_axes")}
        category, color = entry["label"], entry.get("color")
        records.append({"instance_id": instance_id, "category": category, "color": color, "box": box})
    return records


def objects_from_records(
    records: Sequence[Any], counts: dict[int, tuple[int, ...]], skips: SkipLog, where: str
) -> tuple[ObjectFact, ...]:
    """Typed objects from ``meta.json`` records; bad ones are skipped and counted, never guessed."""
    objects, seen = [], set()
    for index, record in enumerate(records):
        instance_id = record.get("instance_id") if isinstance(record, dict) else None
        category = record.get("category") if isinstance(record, dict) else None
        if not isinstance(instance_id, int) or isinstance(instance_id, bool) or instance_id in seen:
            skips.add("object_bad_instance_id", f"{where}: objects[{index}]")
            continue
        if not isinstance(category, str) or not category.strip():
            skips.add("object_without_category", f"{where}: objects[{index}]")
            continue
        box, reason = box_from_record(record.get("box"))
        if box is None:
            skips.add(reason, f"{where}: objects[{index}] ({category})")
            continue
        seen.add(instance_id)
        color = record.get("color") if isinstance(record.get("color"), str) else None
        support = record.get("supported_by")
        support = support if isinstance(support, int) and not isinstance(support, bool) else None
        objects.append(ObjectFact(instance_id, category.strip(), color, box, support, 1.0, counts.get(instance_id, ())))
    return tuple(objects)


def facts_from_meta(
    meta: dict[str, Any],
    skips: SkipLog,
    masks: Sequence[np.ndarray] | None = None,
    depths: Sequence[np.ndarray] | None = None,
) -> SceneFacts:
    """Ground-truth facts of a shard scene from its validated ``meta.json`` record (``SceneMeta.raw``).

    Args:
        meta: the record; ``objects`` / ``room`` may be null (then only camera questions remain).
        skips: where dropped objects are counted.
        masks, depths: optional decoded per-view instance masks and metric depths.
    """
    where = str(meta.get("scene_id", "?"))
    records = meta.get("objects") or []
    ids = [r["instance_id"] for r in records if isinstance(r, dict) and _mask_id(r.get("instance_id"))]
    counts = pixel_counts(list(masks), ids) if masks is not None else {}
    objects = objects_from_records(records, counts, skips, where)
    height, width = meta["image_size"]
    cameras = ()
    if meta.get("pose_source", "none") != "none":
        cameras = tuple(
            CameraFact(
                np.asarray(v["intrinsics"], np.float64), np.asarray(v["cam_to_world"], np.float64), height, width
            )
            for v in meta["views"]
        )
    room = meta.get("room")
    floor = None
    if isinstance(room, dict):
        lower, upper = _finite_vector(room.get("extent_min"), 3), _finite_vector(room.get("extent_max"), 3)
        if lower is not None and upper is not None and np.all(upper[:2] - lower[:2] > MIN_SIDE_M):
            floor = room_floor(lower, upper)
    if floor is None:
        skips.add("scene_without_floor", where)
    return SceneFacts(
        where,
        objects,
        cameras,
        floor,
        GROUND_TRUTH,
        str(meta.get("metric_scale", "none")),
        depths=tuple(depths) if depths is not None else None,
        masks=tuple(masks) if masks is not None else None,
    )
