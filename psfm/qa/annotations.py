"""Scene annotation files in the layouts real datasets use: which scenes, which objects, which room.

A file holds one scene or many. One scene is

* a list of objects (psfm's box files);
* an object with its objects under ``objects``, ``boxes``, ``data`` (ARKitScenes), ``segGroups``
  (ScanNet / ScanNet++), ``annotations``, ``instances``, ``object_bboxes`` or ``bboxes``, each either a
  list of objects or per-category lists (``{"chair": [box, box], "table": [box]}``);
* per-category lists at the top (``{"chair": [...], ...}``).

Many scenes are a ``scenes`` list or mapping, a list of scene objects each naming its scene
(``scene_id``, ``scene_name``, ``scene``, ``scan_id``, ``video_id``), or a mapping from scene id to
scene (VSI-Bench's ``*_metadata.json``: ``{scene: {"room_size", "object_counts", "object_bboxes"}}``).

Beside the objects a scene may carry its room: ``room_size`` / ``room_area`` / ``floor_area`` (one number,
m²), ``floor_polygon`` / ``room_polygon`` ([[x, y], ...] in the boxes' frame), ``floor_height``, or a
``room`` object with those or psfm's ``extent_min`` / ``extent_max``; and the annotation's own counts
(``object_counts``), which ``psfm qa`` compares with its own. Field spellings of objects:
``psfm.qa.schema``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psfm.qa.schema import (
    SchemaError,
    first_of,
    has_label,
    label_of,
    looks_like_box,
    normalize_object,
    snake,
    snake_keys,
)

OBJECT_CONTAINERS = ("objects", "boxes", "data", "seg_groups", "annotations", "instances", "object_bboxes", "bboxes")
SCENE_ID_KEYS = ("scene_id", "scene_name", "scene", "scan_id", "video_id", "scene_key")
AREA_KEYS = ("room_size", "room_area", "floor_area", "area")
POLYGON_KEYS = ("floor_polygon", "room_polygon")
FLOOR_HEIGHT_KEYS = ("floor_height", "floor_z")
COUNT_KEYS = ("object_counts", "counts", "category_counts")
SCENE_KEYS = OBJECT_CONTAINERS + SCENE_ID_KEYS + AREA_KEYS + POLYGON_KEYS + COUNT_KEYS + ("room",)


@dataclass
class SceneAnnotation:
    """One scene as an annotation file describes it.

    Attributes:
        scene_id: the id the file gives (None: the caller names it, e.g. by the file's name).
        objects: ``meta.json``-shaped records (``psfm.qa.schema.normalize_object``).
        room: ``{"floor_polygon"?, "floor_area"?, "floor_height"?, "extent_min"?, "extent_max"?}`` or None.
        counts: the annotation's own objects per category, when it states them.
        where: file (and scene) for messages.
    """

    scene_id: str | None
    objects: list[dict[str, Any]] = field(default_factory=list)
    room: dict[str, Any] | None = None
    counts: dict[str, int] | None = None
    where: str = ""


def _number(value: Any, where: str, name: str, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        kind = "a positive number" if positive else "a finite number"
        raise SchemaError(f"{where}.{name} must be {kind}, got {value!r}")
    return float(value)


def room_of(fields: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The canonical room of a snake-keyed scene or ``room`` record; None when it states none.

    Raises:
        SchemaError: a room field that holds something else than its kind of value, naming it.
    """
    room: dict[str, Any] = {}
    nested = fields.get("room")
    if isinstance(nested, dict):
        room.update(room_of(snake_keys(nested), f"{where}.room") or {})
    elif nested is not None:
        raise SchemaError(f"{where}.room must be an object (floor_polygon, floor_area, floor_height), got {nested!r}")
    for key in ("extent_min", "extent_max"):  # psfm's own room record; checked where used
        if key in fields:
            room[key] = fields[key]
    key = first_of(fields, AREA_KEYS)
    if key is not None:
        room["floor_area"] = _number(fields[key], where, key, positive=True)
    key = first_of(fields, POLYGON_KEYS)
    if key is not None:
        polygon = fields[key]
        points = polygon if isinstance(polygon, list) and len(polygon) >= 3 else None
        if points is None or not all(isinstance(p, list) and len(p) in (2, 3) for p in points):
            raise SchemaError(f"{where}.{key} must list at least 3 points [x, y] (or [x, y, z]), got {polygon!r:.80}")
        room["floor_polygon"] = [[_number(v, where, key) for v in p[:2]] for p in points]
    key = first_of(fields, FLOOR_HEIGHT_KEYS)
    if key is not None:
        room["floor_height"] = _number(fields[key], where, key)
    return room or None


def _counts(fields: dict[str, Any], where: str) -> dict[str, int] | None:
    key = first_of(fields, COUNT_KEYS)
    if key is None:
        return None
    counts = fields[key]
    if not isinstance(counts, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values()
    ):
        raise SchemaError(f"{where}.{key} must map categories to counts, got {counts!r:.80}")
    return {str(category).strip(): n for category, n in counts.items()}


def _objects(container: Any, where: str) -> list[dict[str, Any]]:
    """Records of a list of objects, or of per-category lists ``{"chair": [box, ...]}``."""
    if isinstance(container, list):
        return [normalize_object(entry, f"{where}[{i}]") for i, entry in enumerate(container)]
    if isinstance(container, dict):
        records = []
        for category, boxes in container.items():
            if isinstance(boxes, dict) and has_label(boxes):  # objects keyed by their id
                records.append(normalize_object(boxes, f"{where}.{category}"))
                continue
            if not isinstance(boxes, list):
                raise SchemaError(f"{where}.{category} must be a list of boxes of that category, got {boxes!r:.80}")
            records += [normalize_object(box, f"{where}.{category}[{i}]", str(category)) for i, box in enumerate(boxes)]
        return records
    raise SchemaError(f"{where} must be a list of objects or per-category lists, got {type(container).__name__}")


def _check_ids(objects: list[dict[str, Any]], where: str) -> None:
    """Two objects may share an instance id only when they are the same record (a duplicate, merged later)."""
    seen: dict[int, dict[str, Any]] = {}
    for index, record in enumerate(objects):
        instance_id = record["instance_id"]
        if instance_id is None:
            continue
        if instance_id in seen and seen[instance_id] != record:
            raise SchemaError(f"{where}: objects[{index}].instance_id {instance_id} is already another object's")
        seen[instance_id] = record


GENERIC_STEMS = ("segments_anno", "annotation", "annotations", "boxes", "objects", "scene")
DATASET_SUFFIXES = ("_3dod_annotation", "_annotations", "_annotation", "_boxes", ".aggregation")


def scene_name_of(path: Path) -> str:
    """The scene a one-scene file names by its path: ``41069025_3dod_annotation.json`` -> ``41069025``
    (ARKitScenes), ``<scene>/scans/segments_anno.json`` -> ``<scene>`` (ScanNet++), ``x.json`` -> ``x``."""
    stem = path.stem
    for suffix in DATASET_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    if stem in GENERIC_STEMS:
        folders = [part for part in path.parent.parts[::-1] if part not in ("scans", "annotations", ".")]
        if folders:
            return folders[0]
    return stem


def scene_from_json(value: Any, where: str, scene_id: str | None = None) -> SceneAnnotation:
    """One scene's annotation from its JSON value (any one-scene layout above)."""
    if isinstance(value, list):
        objects = _objects(value, f"{where}: ")
        _check_ids(objects, where)
        return SceneAnnotation(scene_id, objects, where=where)
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: a scene must be a list of objects or an object, not {type(value).__name__}")
    fields = snake_keys(value)
    key = first_of(fields, OBJECT_CONTAINERS)
    if key is not None:
        original = next(name for name in value if snake(str(name)) == key)
        objects = _objects(fields[key], f"{where}: {original}")
    elif any(name in fields for name in SCENE_KEYS):
        objects = []  # a scene that lists no objects (its room alone, say)
    elif all(isinstance(boxes, list) for boxes in value.values()) and value:
        objects = _objects(value, where)
    else:
        shown = ", ".join(sorted(map(str, value))[:8])
        raise SchemaError(
            f"{where}: no objects found: expected one of {', '.join(OBJECT_CONTAINERS)} or per-category lists "
            f"(keys here: {shown})"
        )
    _check_ids(objects, where)
    id_key = first_of(fields, SCENE_ID_KEYS)
    if id_key is not None and isinstance(fields[id_key], (str, int)) and not isinstance(fields[id_key], bool):
        scene_id = str(fields[id_key])
    return SceneAnnotation(scene_id, objects, room_of(fields, where), _counts(fields, where), where)


def _names_a_scene(value: Any) -> bool:
    return isinstance(value, dict) and any(snake(str(key)) in SCENE_KEYS for key in value) and not looks_like_box(value)


def _scenes_by_id(data: dict[str, Any]) -> bool:
    """Whether a mapping is scene id -> scene (rather than category -> boxes of one scene)."""
    values = list(data.values())
    if values and all(_names_a_scene(v) for v in values):
        return True
    if not values or not all(isinstance(v, list) and v for v in values):
        return False
    # lists of labelled objects whose labels are not their key: scenes; boxes of the key's category: one scene
    labelled = all(all(has_label(entry) for entry in v) for v in values)
    return labelled and any(any(label_of(entry) != key for entry in v) for key, v in data.items())


def parse_annotations(data: Any, where: str, default_id: str | None = None) -> list[SceneAnnotation]:
    """Every scene of a parsed annotation file; a one-scene file without an id gets ``default_id``."""
    if isinstance(data, dict) and "scenes" in data:
        return parse_scenes(data["scenes"], f"{where}: scenes")
    if isinstance(data, list) and data and all(_names_a_scene(item) for item in data):
        return parse_scenes(data, where)
    if isinstance(data, dict) and not any(snake(str(key)) in SCENE_KEYS for key in data) and _scenes_by_id(data):
        return parse_scenes(data, where)
    return [scene_from_json(data, where, default_id)]


def parse_scenes(scenes: Any, where: str) -> list[SceneAnnotation]:
    """Scenes listed (each naming its id) or mapped from id to scene."""
    if isinstance(scenes, dict):
        return [scene_from_json(value, f"{where}: {key}", str(key)) for key, value in scenes.items()]
    if not isinstance(scenes, list):
        raise SchemaError(f"{where} must list scenes or map scene ids to scenes, not {type(scenes).__name__}")
    out = []
    for index, value in enumerate(scenes):
        scene = scene_from_json(value, f"{where}[{index}]")
        if scene.scene_id is None:
            raise SchemaError(f"{where}[{index}]: names no scene ({' | '.join(SCENE_ID_KEYS)})")
        out.append(scene)
    return out


def load_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SchemaError(f"{path}: not a readable JSON file ({error})") from None


def read_annotations(path: str | Path) -> list[SceneAnnotation]:
    """Every scene of an annotation file; a one-scene file without an id is named by its path (``scene_name_of``).

    Raises:
        SchemaError: an unreadable file, a layout or field psfm does not know, or two scenes with one id.
    """
    scenes = parse_annotations(load_json(path), str(path), scene_name_of(Path(path)))
    seen: set[str] = set()
    for scene in scenes:
        if scene.scene_id in seen:
            raise SchemaError(f"{path}: scene {scene.scene_id!r} appears twice")
        seen.add(str(scene.scene_id))
    return scenes


def read_scene_annotation(path: str | Path) -> SceneAnnotation:
    """The one scene of ``<scene_id>.json`` (``psfm qa boxes=DIR``); a file of several scenes must hold that id.

    Raises:
        SchemaError: as ``read_annotations``, or a file of several scenes none of which is the file's scene.
    """
    scenes = read_annotations(path)
    if len(scenes) == 1:
        return scenes[0]
    match = [scene for scene in scenes if scene.scene_id == Path(path).stem]
    if not match:
        raise SchemaError(f"{path}: holds {len(scenes)} scenes and none is {Path(path).stem!r}")
    return match[0]
