"""One annotated object in the spellings real datasets use, read into the record ``meta.json`` holds.

Keys are compared in snake case, so ``axesLengths`` and ``axes_lengths`` are one field. Accepted:

============  =====================================================================================
label         ``label``, ``category``, ``class``, ``class_name``, ``category_name``, ``raw_category``
centre        ``centroid``, ``center``, ``centre``
lengths       ``axes_lengths``, ``axis_lengths``, ``lengths``, ``size``, ``dimensions``, ``extent(s)``
              (full side lengths); ``half_size(s)``, ``half_extents``, ``half_lengths`` (doubled)
orientation   ``normalized_axes``, ``normalised_axes``, ``axes``: one unit axis per row, or nine numbers
              axis after axis (ARKitScenes, ScanNet++); ``rotation``, ``rotation_matrix``, ``r``: the
              matrix R whose *columns* are the axes (nine numbers: row after row); ``yaw``, ``heading``:
              radians about +z
or corners    ``min`` + ``max`` (also ``bbox_min``/``bbox_max``, ``aabb_min``/``aabb_max``): axis-aligned
where         the entry itself, or under ``obb_aligned``, ``obb``, ``oriented_bbox``, ``oriented_box``,
              ``box``, ``bbox``, ``bounding_box``, also inside a ``segments`` object (ARKitScenes)
instance id   ``instance_id``, ``object_id``, ``id``: a non-negative integer links the box to the masks
colour        ``color``, ``colour``, ``color_name``
============  =====================================================================================

A field that is missing, or a box with none of these spellings, is a schema error naming the file, the
entry and the field (``SchemaError``): a misspelled key must stop a run, not silently drop every box.
A field that is present but holds a bad value (NaN, a string, a zero side) is not a schema error: the
object is kept and counted, and ``psfm.qa.placement`` says why it cannot be placed.
"""

from __future__ import annotations

import math
import re
from typing import Any

LABEL_KEYS = ("label", "category", "class", "class_name", "category_name", "raw_category")
CENTRE_KEYS = ("centroid", "center", "centre")
LENGTH_KEYS = ("axes_lengths", "axis_lengths", "lengths", "size", "dimensions", "extent", "extents")
HALF_LENGTH_KEYS = ("half_size", "half_sizes", "half_extents", "half_lengths")
AXES_KEYS = ("normalized_axes", "normalised_axes", "axes")
ROTATION_KEYS = ("rotation", "rotation_matrix", "r")
YAW_KEYS = ("yaw", "heading")
CORNER_KEYS = (("min", "max"), ("bbox_min", "bbox_max"), ("aabb_min", "aabb_max"))
BOX_CONTAINERS = ("obb_aligned", "obb", "oriented_bbox", "oriented_box", "box", "bbox", "bounding_box")
ID_KEYS = ("instance_id", "object_id", "id")
COLOUR_KEYS = ("color", "colour", "color_name")
BOX_KEYS = CENTRE_KEYS + tuple(key for pair in CORNER_KEYS for key in pair)


class SchemaError(ValueError):
    """An annotation psfm cannot read: the message names the file, the entry and the field."""


def snake(key: str) -> str:
    """``axesLengths`` -> ``axes_lengths``; ``obbAligned`` -> ``obb_aligned``; snake case stays."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def snake_keys(record: dict[str, Any]) -> dict[str, Any]:
    """The record with snake-case keys; the first spelling of a key wins."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        out.setdefault(snake(str(key)), value)
    return out


def first_of(record: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that ``record`` (snake-keyed) holds."""
    return next((key for key in keys if key in record), None)


def numbers(value: Any, count: int) -> list[float] | None:
    """``value`` as ``count`` floats when it is a list of that many numbers, else None."""
    if not isinstance(value, list) or len(value) != count:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    return [float(v) for v in value]


def _accepted(keys: tuple[str, ...]) -> str:
    return " | ".join(keys)


def _orientation(box: dict[str, Any], where: str) -> Any:
    """The box's axes as ``normalized_axes`` rows (or the raw value, which placement then counts as bad)."""
    key = first_of(box, AXES_KEYS)
    if key is not None:
        return box[key]
    key = first_of(box, ROTATION_KEYS)
    if key is not None:
        value = box[key]
        flat = numbers(value, 9)
        if flat is None and isinstance(value, list) and all(isinstance(row, list) for row in value):
            flat = numbers([v for row in value for v in row], 9)
        if flat is None:
            return box[key]
        rows = [flat[0:3], flat[3:6], flat[6:9]]  # R row after row: its columns are the axes
        return [[rows[0][k], rows[1][k], rows[2][k]] for k in range(3)]
    key = first_of(box, YAW_KEYS)
    if key is not None:
        yaw = box[key]
        if not isinstance(yaw, (int, float)) or isinstance(yaw, bool):
            return yaw
        c, s = math.cos(yaw), math.sin(yaw)
        return [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]
    raise SchemaError(
        f"{where}: no orientation ({_accepted(AXES_KEYS + ROTATION_KEYS + YAW_KEYS)}; "
        "or min and max corners of an axis-aligned box)"
    )


def normalize_box(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The canonical box ``{"centroid", "axes_lengths", "normalized_axes"}`` of one box record.

    Raises:
        SchemaError: no centre, no lengths or no orientation under any accepted spelling.
    """
    box = snake_keys(raw)
    centre = first_of(box, CENTRE_KEYS)
    if centre is None:
        for low, high in CORNER_KEYS:
            if low in box and high in box:
                lower, upper = numbers(box[low], 3), numbers(box[high], 3)
                if lower is None or upper is None:  # kept as given: placement counts the box as not finite
                    return {"centroid": box[low], "axes_lengths": box[high], "normalized_axes": None}
                return {
                    "centroid": [(a + b) / 2 for a, b in zip(lower, upper, strict=True)],
                    "axes_lengths": [b - a for a, b in zip(lower, upper, strict=True)],
                    "normalized_axes": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                }
        raise SchemaError(f"{where}: no box centre ({_accepted(CENTRE_KEYS)}; or min and max corners)")
    lengths_key = first_of(box, LENGTH_KEYS)
    if lengths_key is not None:
        lengths = box[lengths_key]
    else:
        half_key = first_of(box, HALF_LENGTH_KEYS)
        if half_key is None:
            raise SchemaError(f"{where}: no box side lengths ({_accepted(LENGTH_KEYS + HALF_LENGTH_KEYS)})")
        half = numbers(box[half_key], 3)
        lengths = [2 * v for v in half] if half is not None else box[half_key]
    return {"centroid": box[centre], "axes_lengths": lengths, "normalized_axes": _orientation(box, where)}


def box_record(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The part of a snake-keyed entry that holds its box, and where it was (``""``: the entry itself)."""
    for name in BOX_CONTAINERS:
        if isinstance(entry.get(name), dict):
            return entry[name], name
    segments = entry.get("segments")
    if isinstance(segments, dict):
        inner = snake_keys(segments)
        for name in BOX_CONTAINERS:
            if isinstance(inner.get(name), dict):
                return inner[name], f"segments.{name}"
    if first_of(entry, BOX_KEYS) is not None:
        return entry, ""
    return None, ""


def label_of(entry: Any) -> Any:
    """The entry's label under any accepted spelling (None when it has none)."""
    if not isinstance(entry, dict):
        return None
    fields = snake_keys(entry)
    key = first_of(fields, LABEL_KEYS)
    return fields[key] if key else None


def has_label(entry: Any) -> bool:
    return label_of(entry) is not None


def looks_like_box(entry: Any) -> bool:
    """Whether ``entry`` holds a box under some accepted spelling (used to tell file layouts apart)."""
    return isinstance(entry, dict) and box_record(snake_keys(entry))[0] is not None


def normalize_object(entry: Any, where: str, category: str | None = None, require_box: bool = True) -> dict[str, Any]:
    """One object record ``{"instance_id", "category", "color", "box"}`` (the ``meta.json`` shape).

    Args:
        entry: the annotation's object (a dict in any accepted spelling).
        where: file and entry, for messages (``"scan.json: segGroups[3]"``).
        category: the category when the layout gives it (per-category lists); else the entry's label.
        require_box: a box file must give every object a box; ``meta.json`` may list labels alone
            (objects of instance masks), which count but cannot be placed.

    Raises:
        SchemaError: not an object, no label, a bad ``instance_id`` or colour, or no box where one is required.
    """
    if not isinstance(entry, dict):
        raise SchemaError(f"{where} must be an object with a label and a box, not {type(entry).__name__}")
    fields = snake_keys(entry)
    if category is None:
        key = first_of(fields, LABEL_KEYS)
        category = fields.get(key) if key else None
        if not isinstance(category, str) or not category.strip():
            shown = f"{key} is {category!r}" if key else f"no label ({_accepted(LABEL_KEYS)})"
            raise SchemaError(f"{where}: {shown}; a label must be a non-empty string")
    instance_id = None
    for key in ID_KEYS:
        value = fields.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            instance_id = value
            break
        if key == "instance_id" and key in fields:
            raise SchemaError(f"{where}.instance_id must be a non-negative integer, got {value!r}")
    colour_key = first_of(fields, COLOUR_KEYS)
    colour = fields.get(colour_key) if colour_key else None
    if colour is not None and not isinstance(colour, str):
        raise SchemaError(f"{where}.{colour_key} must be a string, got {colour!r}")
    raw_box, inside = box_record(fields)
    if raw_box is None and require_box:
        containers = _accepted(BOX_CONTAINERS)
        raise SchemaError(
            f"{where}: no box (give {_accepted(CENTRE_KEYS)} + lengths + orientation, or min + max, on the entry "
            f"or under {containers})"
        )
    box = normalize_box(raw_box, f"{where}.{inside}" if inside else where) if raw_box is not None else None
    return {"instance_id": instance_id, "category": category.strip(), "color": colour, "box": box}
