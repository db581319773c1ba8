"""Scene annotation files (oriented boxes) -> scene shards that ``psfm qa`` reads as ground truth.

``input=`` is one annotation file or a folder of them (``boxes.pattern``, every ``*.json`` below it by
default). A file holds one scene (ARKitScenes' ``<video>_3dod_annotation.json``, ScanNet++'s
``<scene>/scans/segments_anno.json``, psfm's box lists) or many (VSI-Bench's ``*_metadata.json``); the
layouts and field spellings are ``psfm.qa.annotations`` and ``psfm.qa.schema``, read by the same code as
``psfm qa boxes=``. A file psfm cannot read stops the run, naming the file, the entry and the field.

Each scene becomes one shard scene whose ``meta.json`` holds the boxes as ``objects`` (the annotation's
spelling normalized), the room (``floor_polygon`` / ``floor_area`` / ``floor_height``) when the annotation
gives one, and its own per-category counts in ``source.object_counts``:

* without ``boxes.frames``: no views at all (an annotation-only scene, ``docs/shard_format.md``): ``psfm qa``
  asks the scene-level questions (counts, sizes, distances, directions, room size, routes);
* with ``boxes.frames=DIR``: the scene's capture ``DIR/<scene_id>`` (a folder, or a video file named so) is
  read by the ``boxes.frames_format`` converter (images, depth, masks, cameras), then given the boxes. Its
  cameras must live in the annotation's frame: they are kept only when the capture's poses are ground truth
  in metres (``pose_source`` gt with a metric scale); otherwise its views are kept without cameras and
  ``source.cameras_dropped`` says why. Annotation instance ids plus ``boxes.instance_id_offset`` must be the
  masks' ids (ScanNet's masks number instances ``objectId + 1``: offset 1). A scene whose capture is
  missing is skipped (``no_frames``), never written without its views.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from psfm.converters.base import SceneResult, convert_scene, natural_key
from psfm.converters.options import ConvertOptions
from psfm.datamodules.format import META_MEMBER, ShardFormatError, dump_meta, validate_meta
from psfm.datamodules.sample import ShardSample, build_sample
from psfm.errors import UsageError
from psfm.qa.annotations import SceneAnnotation, read_annotations

LOOKS_FOR = "JSON annotation files of oriented boxes (boxes.pattern), one per scene or one of many scenes"


@dataclass(frozen=True)
class AnnotatedScene:
    """One scene of one annotation file (what a worker converts)."""

    path: Path
    annotation: SceneAnnotation

    def __str__(self) -> str:
        return f"{self.path} (scene {self.annotation.scene_id})"


def annotation_files(root: Path, pattern: str) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted((path for path in root.glob(pattern) if path.is_file()), key=lambda p: natural_key(str(p)))


def keyed_scenes(root: Path, options: ConvertOptions) -> list[tuple[AnnotatedScene, str]]:
    """Every scene of every annotation file, keyed by its scene id (made a valid shard key).

    Raises:
        SchemaError: a file psfm cannot read, naming it and the field.
        UsageError: two scenes with one id.
    """
    keyed, seen = [], {}
    for path in annotation_files(root, options.boxes.pattern):
        for scene in read_annotations(path):
            key = re.sub(r"[^A-Za-z0-9_-]+", "_", str(scene.scene_id)).strip("_") or "scene"
            if key in seen:
                raise UsageError(f"input={root}: scene {key!r} is in both {seen[key]} and {path}")
            seen[key] = path
            keyed.append((AnnotatedScene(path, scene), key))
    return keyed


def _objects(annotation: SceneAnnotation, offset: int) -> list[dict[str, Any]]:
    """The annotation's objects for ``meta.json``, instance ids shifted onto the masks' numbering."""
    objects = []
    for record in annotation.objects:
        instance_id = record["instance_id"]
        objects.append({**record, "instance_id": None if instance_id is None else instance_id + offset})
    return objects


def _provenance(item: AnnotatedScene) -> dict[str, Any]:
    source: dict[str, Any] = {"annotation": str(item.path), "annotation_scene": str(item.annotation.scene_id)}
    if item.annotation.counts is not None:
        source["object_counts"] = item.annotation.counts
    return source


def _frames_of(frames: Path, scene_id: str) -> Path | None:
    """The scene's capture: ``frames/<scene_id>``, a folder or a file with any suffix (a video)."""
    folder = frames / scene_id
    if folder.exists():
        return folder
    files = sorted(frames.glob(f"{glob_escape(scene_id)}.*"))
    return files[0] if files else None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def _with_boxes(result: SceneResult, item: AnnotatedScene, options: ConvertOptions) -> SceneResult:
    """The capture's sample, its ``meta.json`` given the annotation's boxes, room and counts."""
    members = dict(result.sample.members)
    meta = json.loads(members[META_MEMBER])
    source = {**meta["source"], **_provenance(item)}
    if meta["pose_source"] != "gt" or meta["metric_scale"] == "none":
        source["cameras_dropped"] = (
            f"{meta['pose_source']} poses at scale {meta['metric_scale']} are not in the annotation's metric frame"
        )
        meta["pose_source"] = "none"
        for view in meta["views"]:
            view["cam_to_world"] = None
        meta["metric_scale"] = "gt"  # metres come from the annotation
    meta.update(objects=_objects(item.annotation, options.boxes.instance_id_offset), room=item.annotation.room)
    meta["source"] = source
    validate_meta(meta, set(members), where=f"{item}")
    members[META_MEMBER] = dump_meta(meta)
    return replace(result, sample=ShardSample(result.key, members))


def build_scene(item: AnnotatedScene, key: str, options: ConvertOptions) -> SceneResult:
    """One annotated scene as a shard scene, with its capture's views when ``boxes.frames`` is set."""
    objects = _objects(item.annotation, options.boxes.instance_id_offset)
    if not objects:
        return SceneResult(key, None, scene_problem=("no_objects", f"{item}: lists no object"))
    if options.boxes.frames is None:
        try:
            sample = build_sample(
                key, images=[], intrinsics=[], cam_to_world=None, pose_source="none",
                source={"kind": "boxes", **_provenance(item)}, objects=objects, room=item.annotation.room,
                metric_scale="gt",
            )  # fmt: skip
        except ShardFormatError as error:
            return SceneResult(key, None, scene_problem=("invalid_scene", str(error)))
        return SceneResult(key, sample, 0)
    capture = _frames_of(Path(options.boxes.frames), str(item.annotation.scene_id))
    if capture is None:
        where = Path(options.boxes.frames) / str(item.annotation.scene_id)
        return SceneResult(key, None, scene_problem=("no_frames", f"{where}: no capture for {item} (boxes.frames)"))
    result = convert_scene(options.boxes.frames_format, capture, key, options)
    if result.sample is None:
        return result
    try:
        return _with_boxes(result, item, options)
    except ShardFormatError as error:
        return replace(result, sample=None, scene_problem=("invalid_scene", str(error)))
