"""Assemble one scene into the members of a shard sample; every producer goes through here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from psfm.datamodules.codecs import encode_depth, encode_mask, encode_rgb
from psfm.datamodules.format import FORMAT_NAME, FORMAT_VERSION, META_MEMBER, check_key, dump_meta, validate_meta


@dataclass(frozen=True)
class ShardSample:
    """A scene ready for the writer: its key and member suffix -> bytes (``meta.json`` included)."""

    key: str
    members: dict[str, bytes]


def _matrix_to_json(matrix: np.ndarray) -> list[list[float]]:
    return [[float(x) for x in row] for row in np.asarray(matrix, dtype=np.float64)]


def build_sample(
    key: str,
    images: Sequence[np.ndarray],
    intrinsics: Sequence[np.ndarray],
    cam_to_world: Sequence[np.ndarray] | None,
    pose_source: str,
    source: dict[str, Any],
    depths: Sequence[np.ndarray] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    objects: list[dict[str, Any]] | None = None,
    room: dict[str, Any] | None = None,
    metric_scale: str = "none",
    image_format: str = "jpg",
    jpeg_quality: int = 90,
) -> ShardSample:
    """Encode a scene's views and metadata in the shard format (see ``psfm.datamodules.format``).

    Args:
        key: scene id, letters/digits/``_``/``-`` only.
        images: V arrays [H, W, 3] uint8, all the same size; none for an annotation-only scene (then
            ``pose_source`` must be ``none`` and ``objects`` given).
        intrinsics: V arrays [3, 3] in pixels of ``images``.
        cam_to_world: V arrays [4, 4] (OpenCV camera-to-world), or None for unposed captures.
        pose_source: where the poses came from (``gt``, ``colmap``, ``predicted``, ``none``).
        source: provenance recorded verbatim (dataset name, seed, original paths...).
        depths: optional V arrays [H, W] metric z-depth in metres (0 or NaN = unknown).
        masks: optional V arrays [H, W] instance ids (0 = background).
        objects, room: optional annotations (see ``docs/shard_format.md``).
        metric_scale: where metric units come from (``gt``, ``sensor_depth``, ``predicted``, ``none``).

    Raises:
        ShardFormatError: when the result would not validate (the writer re-checks anyway).
    """
    check_key(key, "build_sample")
    if not images:  # annotation-only: no views, no image size, no poses (validate_meta checks the rest)
        record = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "scene_id": key, "source": source, "image_size": None,
            "pose_source": pose_source, "metric_scale": metric_scale, "views": [], "objects": objects, "room": room,
        }  # fmt: skip
        validate_meta(record, set(), where=f"build_sample {key}")
        return ShardSample(key, {META_MEMBER: dump_meta(record)})
    height, width = images[0].shape[:2]
    members: dict[str, bytes] = {}
    views = []
    for index, image in enumerate(images):
        if image.shape[:2] != (height, width):
            raise ValueError(f"{key}: view {index} is {image.shape[:2]}, view 0 is {(height, width)}")
        image_name = f"{index:03d}.rgb.{image_format}"
        members[image_name] = encode_rgb(image, image_format, jpeg_quality)
        view: dict[str, Any] = {
            "image": image_name,
            "intrinsics": _matrix_to_json(intrinsics[index]),
            "cam_to_world": None if cam_to_world is None else _matrix_to_json(cam_to_world[index]),
            "depth": None,
            "mask": None,
        }
        if depths is not None:
            view["depth"] = f"{index:03d}.depth.png"
            members[view["depth"]] = encode_depth(depths[index])
        if masks is not None:
            view["mask"] = f"{index:03d}.mask.png"
            members[view["mask"]] = encode_mask(masks[index])
        views.append(view)
    record = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "scene_id": key,
        "source": source,
        "image_size": [int(height), int(width)],
        "pose_source": pose_source,
        "metric_scale": metric_scale,
        "views": views,
        "objects": objects,
        "room": room,
    }
    validate_meta(record, set(members), where=f"build_sample {key}")
    members[META_MEMBER] = dump_meta(record)
    return ShardSample(key, members)
