"""The psfm scene-shard format, version 1: its one definition and its validator.

A WebDataset shard is a plain tar. One sample is one scene; its members share the scene key::

    <key>.meta.json            scene metadata (below), UTF-8 JSON
    <key>.<iii>.rgb.jpg|png    view i colour image (8-bit sRGB)
    <key>.<iii>.depth.png      view i metric z-depth, 16-bit PNG in millimetres, 0 = unknown (optional)
    <key>.<iii>.mask.png       view i instance ids, 8/16-bit PNG, 0 = background (optional)

``meta.json``::

    {"format": "psfm-scene", "version": 1, "scene_id": "<key>",
     "source": {"kind": "world" | "scannet" | ..., ...free-form provenance...},
     "image_size": [H, W] | null, "pose_source": "gt" | "colmap" | "predicted" | "none",
     "metric_scale": "gt" | "sensor_depth" | "predicted" | "none",  # where metric units come from
     "views": [{"image": "000.rgb.jpg", "depth": "000.depth.png" | null, "mask": "000.mask.png" | null,
                "intrinsics": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                "cam_to_world": 4x4 OpenCV camera-to-world | null}, ...],
     "objects": [...] | null, "room": {...} | null,
     "qa": {"version": 1, "questions": [...], ...} }   # optional, written by `psfm qa`

A scene may have no views at all when it is annotations only (``psfm convert boxes`` without frames):
then ``views`` is ``[]``, ``image_size`` null, ``pose_source`` "none" and ``objects`` non-empty; the
loader skips it (``too_few_views``), ``psfm qa`` asks its scene-level questions.

Keys contain no dots, slashes or ``..`` (WebDataset splits the key at the first dot, and a key is
never a path). Nothing in a shard is ever unpickled: only the member suffixes above are accepted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT_NAME = "psfm-scene"
FORMAT_VERSION = 1
POSE_SOURCES = ("gt", "colmap", "predicted", "none")
METRIC_SCALES = ("gt", "sensor_depth", "predicted", "none")  # predicted: a pose model's metric translations
KEY_PATTERN = re.compile(r"[A-Za-z0-9_\-]+")  # used with fullmatch: "$" would admit a trailing newline
VIEW_MEMBER_PATTERN = re.compile(r"(?P<view>[0-9]{3})\.(?P<kind>rgb\.jpg|rgb\.png|depth\.png|mask\.png)")
META_MEMBER = "meta.json"
QA_VERSION = 1
QA_FORMATS = ("free_form", "multiple_choice", "yes_no")
# how far from a rotation a pose's 3x3 block may be (max |R^T R - I|): float32 poses written through JSON
# stay within 1e-6, while a scaled, sheared or all-zero block is off by O(1)
RIGID_TOLERANCE = 1e-3


class ShardFormatError(ValueError):
    """A sample or shard does not follow the format; the message names the file, member and field.

    ``reason`` names the kind of fault for the loader's skip counts (``non_rigid_pose``, ``unknown_member``...);
    None counts it under the class name, as every other error.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ViewMeta:
    """Where one view's images live in the sample, and its camera."""

    image: str
    intrinsics: tuple[tuple[float, float, float], ...]
    cam_to_world: tuple[tuple[float, ...], ...] | None
    depth: str | None = None
    mask: str | None = None


@dataclass(frozen=True)
class SceneMeta:
    """Validated ``meta.json`` of one scene; ``raw`` keeps the full record (objects, room, provenance)."""

    scene_id: str
    image_size: tuple[int, int] | None  # None only for an annotation-only scene (no views)
    pose_source: str
    metric_scale: str
    views: tuple[ViewMeta, ...]
    raw: dict[str, Any]

    @property
    def num_views(self) -> int:
        return len(self.views)

    @property
    def objects(self) -> list[dict[str, Any]] | None:
        return self.raw.get("objects")

    @property
    def room(self) -> dict[str, Any] | None:
        return self.raw.get("room")


def check_key(key: str, where: str = "sample") -> None:
    """Refuse keys that WebDataset would split or that look like paths (``../x``, ``a/b``, ``a.b``)."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ShardFormatError(
            f"{where}: scene key {key!r} must match {KEY_PATTERN.pattern} (no dots, slashes or '..')"
        )


def _require(record: dict, name: str, kinds: type | tuple[type, ...], where: str) -> Any:
    if name not in record:
        raise ShardFormatError(f"{where}: missing field '{name}'")
    value = record[name]
    if (
        not isinstance(value, kinds)
        or isinstance(value, bool)
        and bool not in (kinds if isinstance(kinds, tuple) else (kinds,))
    ):
        raise ShardFormatError(f"{where}: field '{name}' has type {type(value).__name__}, expected {kinds}")
    return value


def _matrix(value: Any, rows: int, cols: int, field_name: str, where: str) -> tuple[tuple[float, ...], ...]:
    shape_ok = (
        isinstance(value, list) and len(value) == rows and all(isinstance(r, list) and len(r) == cols for r in value)
    )
    if not shape_ok:
        raise ShardFormatError(
            f"{where}: field '{field_name}' must be a {rows}x{cols} list of numbers, got {value!r:.80}"
        )
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for row in value for x in row):
        raise ShardFormatError(f"{where}: field '{field_name}' holds a non-number")
    try:
        matrix = tuple(tuple(float(x) for x in row) for row in value)
    except OverflowError:
        raise ShardFormatError(f"{where}: field '{field_name}' holds a number too large for a float") from None
    if not all(math.isfinite(x) for row in matrix for x in row):
        raise ShardFormatError(f"{where}: field '{field_name}' holds NaN or infinity", "non_finite_camera")
    return matrix


def _check_intrinsics(intrinsics: tuple[tuple[float, ...], ...], size: list[int], field_name: str, where: str) -> None:
    """A pinhole camera whose principal point lies near its image: anything else is a corrupt or misread record.

    The principal point may leave the image (crops, shifted lenses) but not by more than the image's size.
    """
    (fx, skew, cx), (zero, fy, cy), bottom = intrinsics
    if fx <= 0 or fy <= 0:
        raise ShardFormatError(f"{where}: field '{field_name}' has a non-positive focal length", "bad_intrinsics")
    if skew != 0 or zero != 0 or bottom != (0.0, 0.0, 1.0):
        raise ShardFormatError(
            f"{where}: field '{field_name}' = {[list(row) for row in intrinsics]} is not "
            "[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]",
            "bad_intrinsics",
        )
    height, width = size
    if not (-width <= cx <= 2 * width and -height <= cy <= 2 * height):
        raise ShardFormatError(
            f"{where}: field '{field_name}' has its principal point ({cx:g}, {cy:g}) outside "
            f"[-W, 2W] x [-H, 2H] of the {width}x{height} image",
            "bad_intrinsics",
        )


def _check_rigid(pose: tuple[tuple[float, ...], ...], field_name: str, where: str) -> None:
    """A camera-to-world pose must be a rotation and a translation: the loader inverts and composes poses,
    and an all-zero or scaled block either crashes it (a singular matrix) or trains on impossible geometry."""
    matrix = np.asarray(pose)
    rotation = matrix[:3, :3]
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    why = None
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=RIGID_TOLERANCE):
        why = f"last row is {matrix[3].tolist()}, expected [0, 0, 0, 1]"
    elif error > RIGID_TOLERANCE:
        why = f"rotation block is not orthonormal: max |R^T R - I| = {error:.3g} > {RIGID_TOLERANCE:g}"
    elif np.linalg.det(rotation) < 0:
        why = "rotation block has determinant -1, a reflection"
    if why is not None:
        raise ShardFormatError(
            f"{where}: field '{field_name}' is not a rigid camera-to-world transform ({why})", "non_rigid_pose"
        )


def _validate_view(view: Any, index: int, size: list[int], members: set[str] | None, where: str) -> ViewMeta:
    field_prefix = f"views[{index}]"
    if not isinstance(view, dict):
        raise ShardFormatError(f"{where}: field '{field_prefix}' must be an object")
    image = _require(view, "image", str, f"{where} {field_prefix}")
    intrinsics = _matrix(view.get("intrinsics"), 3, 3, f"{field_prefix}.intrinsics", where)
    _check_intrinsics(intrinsics, size, f"{field_prefix}.intrinsics", where)
    pose = view.get("cam_to_world")
    cam_to_world = None if pose is None else _matrix(pose, 4, 4, f"{field_prefix}.cam_to_world", where)
    if cam_to_world is not None:
        _check_rigid(cam_to_world, f"{field_prefix}.cam_to_world", where)
    names = {"image": image, "depth": view.get("depth"), "mask": view.get("mask")}
    for kind, name in names.items():
        if name is None:
            continue
        match = VIEW_MEMBER_PATTERN.fullmatch(name) if isinstance(name, str) else None
        if match is None or not match["kind"].startswith("rgb" if kind == "image" else kind):
            raise ShardFormatError(
                f"{where}: field '{field_prefix}.{kind}' = {name!r} is not a valid {kind} member name"
            )
        if members is not None and name not in members:
            raise ShardFormatError(
                f"{where}: field '{field_prefix}.{kind}' names member {name!r}, which the sample lacks"
            )
    return ViewMeta(image, intrinsics, cam_to_world, names["depth"], names["mask"])


def validate_qa(qa: Any, num_views: int, where: str = "sample") -> None:
    """Check the optional ``qa`` field of ``meta.json`` (spatial questions attached by ``psfm qa``).

    Checks the structure every consumer relies on: known version, and per question an id, task,
    format, text and answer, view indices that exist, and for multiple choice an answer letter
    among its options.

    Raises:
        ShardFormatError: naming ``where`` and the offending field.
    """
    if not isinstance(qa, dict):
        raise ShardFormatError(f"{where}: field 'qa' must be an object")
    version = _require(qa, "version", int, f"{where} qa")
    if version != QA_VERSION:
        raise ShardFormatError(f"{where}: qa version {version} is not supported (this psfm reads {QA_VERSION})")
    questions = _require(qa, "questions", list, f"{where} qa")
    for index, question in enumerate(questions):
        field_prefix = f"qa.questions[{index}]"
        if not isinstance(question, dict):
            raise ShardFormatError(f"{where}: field '{field_prefix}' must be an object")
        for name in ("id", "task", "question", "answer"):
            _require(question, name, str, f"{where} {field_prefix}")
        if question.get("format") not in QA_FORMATS:
            raise ShardFormatError(f"{where}: field '{field_prefix}.format' must be one of {QA_FORMATS}")
        views = _require(question, "views", list, f"{where} {field_prefix}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < num_views for v in views):
            raise ShardFormatError(f"{where}: field '{field_prefix}.views' names a view the scene lacks")
        if question["format"] == "multiple_choice":
            choices = question.get("choices")
            letters = tuple("ABCDEFGH"[: len(choices)]) if isinstance(choices, list) else ()
            if question["answer"] not in letters:
                raise ShardFormatError(f"{where}: field '{field_prefix}.answer' is not one of its choices' letters")


def validate_meta(record: Any, members: set[str] | None = None, where: str = "sample") -> SceneMeta:
    """Check a decoded ``meta.json`` against the format and return it typed.

    Args:
        record: the parsed JSON.
        members: the sample's member suffixes (e.g. ``{"meta.json", "000.rgb.jpg"}``); when given,
            every file a view names must be present.
        where: prefix for error messages, e.g. ``"shard-000003.tar:scene_0042"``.

    Raises:
        ShardFormatError: naming ``where`` and the offending field.
    """
    if not isinstance(record, dict):
        raise ShardFormatError(f"{where}: meta.json must hold a JSON object")
    if record.get("format") != FORMAT_NAME:
        raise ShardFormatError(f"{where}: field 'format' is {record.get('format')!r}, expected {FORMAT_NAME!r}")
    version = _require(record, "version", int, where)
    if version != FORMAT_VERSION:
        raise ShardFormatError(f"{where}: format version {version} is not supported (this psfm reads {FORMAT_VERSION})")
    scene_id = _require(record, "scene_id", str, where)
    check_key(scene_id, where)
    views = _require(record, "views", list, where)
    pose_source = _require(record, "pose_source", str, where)
    if pose_source not in POSE_SOURCES:
        raise ShardFormatError(f"{where}: field 'pose_source' is {pose_source!r}, expected one of {POSE_SOURCES}")
    metric_scale = record.get("metric_scale", "none")
    if metric_scale not in METRIC_SCALES:
        raise ShardFormatError(f"{where}: field 'metric_scale' is {metric_scale!r}, expected one of {METRIC_SCALES}")
    if not views:  # an annotation-only scene (psfm convert boxes without frames): no image, no camera
        if record.get("image_size") is not None or pose_source != "none" or not record.get("objects"):
            raise ShardFormatError(
                f"{where}: field 'views' is empty, which only an annotation-only scene may be "
                "(image_size null, pose_source none, objects listed)"
            )
        if record.get("qa") is not None:
            validate_qa(record["qa"], 0, where)
        return SceneMeta(scene_id, None, pose_source, metric_scale, (), record)
    size = _require(record, "image_size", list, where)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ShardFormatError(f"{where}: field 'image_size' must be [H, W] positive integers, got {size!r}")
    typed_views = tuple(_validate_view(view, i, size, members, where) for i, view in enumerate(views))
    if pose_source != "none" and any(view.cam_to_world is None for view in typed_views):
        raise ShardFormatError(f"{where}: pose_source is {pose_source!r} but some views have no 'cam_to_world'")
    if record.get("qa") is not None:
        validate_qa(record["qa"], len(typed_views), where)
    return SceneMeta(scene_id, (size[0], size[1]), pose_source, metric_scale, typed_views, record)


def parse_meta(data: bytes, members: set[str] | None = None, where: str = "sample") -> SceneMeta:
    """Decode and validate ``meta.json`` bytes."""
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError as error:  # UnicodeDecodeError, JSONDecodeError, and over-long integer literals
        raise ShardFormatError(f"{where}: meta.json is not valid UTF-8 JSON ({error})", "invalid_json") from None
    return validate_meta(record, members, where)


def dump_meta(record: dict[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, compact) so equal scenes give byte-identical shards."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
