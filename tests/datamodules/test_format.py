"""Format v1 validation: every error names where and which field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from psfm.datamodules.codecs import decode_depth, decode_mask, decode_rgb, encode_depth, encode_mask, encode_rgb
from psfm.datamodules.format import ShardFormatError, check_key, dump_meta, parse_meta, validate_meta
from tests.conftest import synthetic_scene


@pytest.fixture
def record():
    sample = synthetic_scene("scene_1", np.random.default_rng(0), 3, 8)
    return json.loads(sample.members["meta.json"]), set(sample.members)


def test_valid_record(record):
    meta = validate_meta(*record)
    assert meta.num_views == 3 and meta.image_size == (8, 8) and meta.pose_source == "gt"


def _set(record: dict, path: str, value) -> dict:
    record = json.loads(json.dumps(record))
    target, *keys = record, *path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return record


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("views", KeyError, "missing field 'views'"),
        ("views", [], "'views' is empty"),
        ("format", "other", "field 'format'"),
        ("version", 2, "version 2 is not supported"),
        ("image_size", [0, 5], "'image_size'"),
        ("pose_source", "lidar", "'pose_source' is 'lidar'"),
        ("views.1.intrinsics", [[1, 0, 0], [0, 1, 0]], "'views\\[1\\].intrinsics' must be a 3x3"),
        ("views.1.intrinsics", [[float("nan"), 0, 4], [0, 1, 4], [0, 0, 1]], "NaN or infinity"),
        ("views.1.intrinsics", [[-5, 0, 4], [0, 5, 4], [0, 0, 1]], "non-positive focal"),
        ("views.2.cam_to_world", None, "some views have no 'cam_to_world'"),
        ("views.0.image", "../x.jpg", "not a valid image member name"),
        ("views.0.image", "000.rgb.exe", "not a valid image member name"),
        ("views.0.depth", "009.depth.png", "which the sample lacks"),
    ],
)
def test_invalid_records_name_the_field(record, path, value, message):
    fields, members = record
    with pytest.raises(ShardFormatError, match=f"^shard-7.tar:scene_1: .*{message}"):
        validate_meta(_set(fields, path, value), members, where="shard-7.tar:scene_1")


def test_undecodable_meta_and_keys():
    with pytest.raises(ShardFormatError, match="meta.json is not valid UTF-8 JSON"):
        parse_meta(b"\xff{", where="x")
    for bad in ("../evil", "a/b", "a.b", ""):
        with pytest.raises(ShardFormatError, match="no dots"):
            check_key(bad)
    check_key("scene_01-x")
    assert dump_meta({"b": 1, "a": 2}) == dump_meta({"a": 2, "b": 1})
    with pytest.raises(ValueError):
        dump_meta({"a": float("nan")})


def test_codecs_round_trip_and_name_broken_members():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.1, 60.0, (9, 7)).astype(np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, -1.0, 70.0
    decoded = decode_depth(encode_depth(depth))
    assert np.abs(decoded - depth)[1:].max() <= 0.0005 and (decoded[0, :3] == 0).all()
    for high in (200, 1000):
        mask = rng.integers(0, high, (5, 6))
        assert np.array_equal(decode_mask(encode_mask(mask)), mask)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode_rgb(encode_rgb(rgb, "png")), rgb)
    assert encode_rgb(rgb) == encode_rgb(rgb)
    jpeg = encode_rgb(np.full((32, 32, 3), 120, np.uint8))
    for broken in (jpeg[: len(jpeg) // 2], b"garbage"):
        with pytest.raises(ShardFormatError, match="shard-1.tar:k.000.rgb.jpg: cannot decode image"):
            decode_rgb(broken, "shard-1.tar:k.000.rgb.jpg")
