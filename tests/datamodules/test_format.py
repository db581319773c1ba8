"""Format v1: the validator accepts what build_sample makes and names `where` and the field in every refusal."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from psfm.datamodules.format import ShardFormatError, check_key, dump_meta, parse_meta, validate_meta
from psfm.datamodules.sample import build_sample

WHERE = "shard-000007.tar:scene_01"
SIZE = 16
NUM_VIEWS = 3


def make_sample(key: str = "scene_01", pose_source: str = "gt"):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(NUM_VIEWS)]
    intrinsics = [np.array([[20.0, 0.0, 8.0], [0.0, 21.0, 8.0], [0.0, 0.0, 1.0]])] * NUM_VIEWS
    poses = None
    if pose_source != "none":
        poses = []
        for index in range(NUM_VIEWS):
            pose = np.eye(4)
            pose[:3, 3] = [index, 0.5, -1.0]
            poses.append(pose)
    depths = [np.full((SIZE, SIZE), 1.0 + i) for i in range(NUM_VIEWS)]
    masks = [rng.integers(0, 4, (SIZE, SIZE)) for _ in range(NUM_VIEWS)]
    return build_sample(key, images, intrinsics, poses, pose_source, {"kind": "test", "seed": 0}, depths, masks)


@pytest.fixture
def sample():
    return make_sample()


@pytest.fixture
def record(sample) -> dict:
    return json.loads(sample.members["meta.json"].decode("utf-8"))


@pytest.fixture
def members(sample) -> set[str]:
    return set(sample.members)


def test_built_record_validates_with_the_right_typed_fields(record, members):
    meta = validate_meta(record, members, where=WHERE)
    assert meta.scene_id == "scene_01"
    assert meta.num_views == NUM_VIEWS
    assert meta.image_size == (SIZE, SIZE)
    assert meta.pose_source == "gt"
    assert meta.metric_scale == "none"
    assert [view.image for view in meta.views] == ["000.rgb.jpg", "001.rgb.jpg", "002.rgb.jpg"]
    assert [view.depth for view in meta.views] == ["000.depth.png", "001.depth.png", "002.depth.png"]
    assert meta.views[1].intrinsics == ((20.0, 0.0, 8.0), (0.0, 21.0, 8.0), (0.0, 0.0, 1.0))
    assert meta.views[2].cam_to_world[0][3] == 2.0
    assert meta.raw["source"] == {"kind": "test", "seed": 0}


def test_unposed_capture_validates_without_cam_to_world():
    unposed = make_sample(pose_source="none")
    meta = parse_meta(unposed.members["meta.json"], set(unposed.members), WHERE)
    assert meta.pose_source == "none" and all(view.cam_to_world is None for view in meta.views)


def _edit(record: dict, path: str, value) -> dict:
    """A deep copy of ``record`` with ``path`` ("views.1.intrinsics") set to ``value`` (or deleted for KeyError)."""
    record = copy.deepcopy(record)
    *parents, last = path.split(".")
    target = record
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    last_key = int(last) if last.isdigit() else last
    if value is KeyError:
        del target[last_key]
    else:
        target[last_key] = value
    return record


NAN = float("nan")


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("views", KeyError, "missing field 'views'"),
        ("format", "psfm-other", "field 'format' is 'psfm-other'"),
        ("version", 2, "version 2 is not supported"),
        ("views.1.intrinsics", [[20, 0, 8], [0, 21, 8]], "field 'views[1].intrinsics' must be a 3x3"),
        ("views.1.intrinsics", [[NAN, 0, 8], [0, 21, 8], [0, 0, 1]], "field 'views[1].intrinsics' holds NaN"),
        ("views.1.intrinsics", [[0, 0, 8], [0, 21, 8], [0, 0, 1]], "field 'views[1].intrinsics' has a non-positive"),
        ("views.2.intrinsics", [[20, 0, 8], [0, -3, 8], [0, 0, 1]], "field 'views[2].intrinsics' has a non-positive"),
        ("pose_source", "lidar", "field 'pose_source' is 'lidar'"),
        ("views.2.cam_to_world", None, "no 'cam_to_world'"),
        ("views.0.image", "../x.jpg", "field 'views[0].image' = '../x.jpg' is not a valid image member name"),
        ("views.0.image", "a.rgb.exe", "field 'views[0].image' = 'a.rgb.exe' is not a valid image member name"),
        ("views.0.image", "000.depth.png", "field 'views[0].image' = '000.depth.png' is not a valid image"),
        ("views.1.mask", "001.rgb.png", "field 'views[1].mask' = '001.rgb.png' is not a valid mask"),
        ("views.1.depth", "009.depth.png", "field 'views[1].depth' names member '009.depth.png', which the sample"),
        ("views", [], "field 'views' is empty"),
        ("image_size", [0, 5], "field 'image_size' must be [H, W] positive integers"),
        ("image_size", [16], "field 'image_size'"),
        ("scene_id", "../evil", "scene key '../evil'"),
        ("views.0", "000.rgb.jpg", "field 'views[0]' must be an object"),
    ],
)
def test_invalid_record_names_where_and_field(record, members, path, value, fragment):
    broken = _edit(record, path, value)
    with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: .*{re.escape(fragment)}"):
        validate_meta(broken, members, where=WHERE)


def test_an_annotation_only_scene_has_no_views_and_nothing_else_may(record):
    box = {"centroid": [0, 0, 0.5], "axes_lengths": [1, 1, 1], "normalized_axes": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    bare = {
        **record,
        "views": [],
        "image_size": None,
        "pose_source": "none",
        "objects": [{"category": "bed", "box": box}],
    }
    meta = validate_meta(bare, {"meta.json"}, where=WHERE)
    assert meta.num_views == 0 and meta.image_size is None
    for path, value in (("objects", None), ("pose_source", "gt"), ("image_size", [16, 16])):
        # the message says what such a scene is (mutation testing: those words garbled survived)
        expected = "only an annotation-only scene may be (image_size null, pose_source none, objects listed)"
        with pytest.raises(ShardFormatError, match=re.escape(expected) + "$"):
            validate_meta(_edit(bare, path, value), None, where=WHERE)


def test_member_check_only_applies_when_members_are_given(record):
    broken = _edit(record, "views.1.depth", "009.depth.png")
    assert validate_meta(broken, None, where=WHERE).views[1].depth == "009.depth.png"


def test_non_object_record_is_refused():
    for not_an_object in ([], "meta", None, 3):
        with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: meta.json must hold a JSON object"):
            validate_meta(not_an_object, where=WHERE)


@pytest.mark.parametrize("data", [b"\xff\xfe{}", b"{not json", b"", b'{"format": "psfm-scene",'])
def test_parse_meta_refuses_undecodable_bytes(data):
    with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: meta\.json is not valid UTF-8 JSON"):
        parse_meta(data, where=WHERE)


def test_parse_meta_round_trips_the_built_member(sample):
    meta = parse_meta(sample.members["meta.json"], set(sample.members), WHERE)
    assert meta.num_views == NUM_VIEWS and meta.views[0].mask == "000.mask.png"


@pytest.mark.parametrize("key", ["../evil", "a/b", "a.b", "", "..", "a b", "a\\b", None, 7])
def test_check_key_refuses_paths_dots_and_non_strings(key):
    with pytest.raises(ShardFormatError, match=r"^shard-1\.tar: scene key .* \(no dots, slashes or '\.\.'\)"):
        check_key(key, "shard-1.tar")


@pytest.mark.parametrize("key", ["scene_01-x", "A", "0", "scene-0001_b"])
def test_check_key_accepts_letters_digits_underscore_dash(key):
    check_key(key)


def test_check_key_refuses_a_trailing_newline():
    with pytest.raises(ShardFormatError):
        check_key("scene_01\n")


def test_member_name_with_trailing_newline_is_refused(record):
    broken = _edit(record, "views.0.image", "000.rgb.jpg\n")
    with pytest.raises(ShardFormatError, match="views\\[0\\].image"):
        validate_meta(broken, None, where=WHERE)


def test_huge_integer_in_a_matrix_is_a_format_error(record, members):
    broken = _edit(record, "views.1.intrinsics", [[10**400, 0, 8], [0, 21, 8], [0, 0, 1]])
    with pytest.raises(ShardFormatError, match=re.escape("views[1].intrinsics")):
        validate_meta(broken, members, where=WHERE)


def test_parse_meta_reports_an_overlong_integer_as_format_error():
    with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: meta\.json"):
        parse_meta(b'{"version": ' + b"1" * 5000 + b"}", where=WHERE)


@pytest.mark.parametrize(("path", "value"), [("image_size", [True, SIZE]), ("views.0.intrinsics.0.0", "20")])
def test_numeric_fields_refuse_json_booleans_and_strings(record, members, path, value):
    with pytest.raises(ShardFormatError):
        validate_meta(_edit(record, path, value), members, where=WHERE)


def test_dump_meta_is_canonical(record):
    reordered = json.loads(json.dumps(record))
    reordered = dict(reversed(list(reordered.items())))
    reordered["views"] = [dict(reversed(list(view.items()))) for view in reordered["views"]]
    assert list(reordered) != list(record)
    assert dump_meta(reordered) == dump_meta(record)
    assert dump_meta({"b": 1, "a": {"y": 2, "x": [3, 4]}}) == dump_meta({"a": {"x": [3, 4], "y": 2}, "b": 1})
    assert dump_meta({"a": 1}) != dump_meta({"a": 2})


def test_dump_meta_reproduces_the_built_member(sample):
    data = sample.members["meta.json"]
    assert dump_meta(json.loads(data)) == data


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_dump_meta_refuses_non_finite_numbers(bad):
    with pytest.raises(ValueError):
        dump_meta({"views": [], "x": bad})


def _pose(rotation, translation=(1.0, 0.5, -1.0), last_row=(0.0, 0.0, 0.0, 1.0)) -> list[list[float]]:
    rows = [[*map(float, rotation[i]), float(translation[i])] for i in range(3)]
    return [*rows, [*map(float, last_row)]]


IDENTITY = np.eye(3)
NOT_RIGID = "is not a rigid camera-to-world transform"


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("views.1.cam_to_world", [[0.0] * 4] * 4, f"field 'views[1].cam_to_world' {NOT_RIGID}"),  # LinAlgError before
        ("views.2.cam_to_world", _pose(2 * IDENTITY), f"field 'views[2].cam_to_world' {NOT_RIGID}"),  # scaled rotation
        ("views.0.cam_to_world", _pose(np.diag([1, 1, -1])), "(rotation block has determinant -1, a reflection)"),
        ("views.1.cam_to_world", _pose(IDENTITY, last_row=(0, 0, 1, 1)), "last row"),
        ("views.1.intrinsics", [[20, 0, 1e6], [0, 21, 8], [0, 0, 1]], "field 'views[1].intrinsics' has its principal"),
        ("views.2.intrinsics", [[20, 0, 8], [0, 21, -40], [0, 0, 1]], "field 'views[2].intrinsics' has its principal"),
        ("views.1.intrinsics", [[20, 3, 8], [0, 21, 8], [0, 0, 1]], "is not [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]"),
        ("views.1.intrinsics", [[20, 0, 8], [0, 21, 8], [0, 0, 2]], "is not [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]"),
    ],
)
def test_degenerate_cameras_are_refused_naming_view_and_field(record, members, path, value, fragment):
    """Finite but impossible cameras: an all-zero pose crashed the loader with ``LinAlgError`` naming no scene.
    Each is counted under its reason (mutation testing: a reason upper-cased, and a mirror's words garbled, survived).
    """
    with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: .*{re.escape(fragment)}") as raised:
        validate_meta(_edit(record, path, value), members, where=WHERE)
    assert raised.value.reason == ("non_rigid_pose" if path.endswith("cam_to_world") else "bad_intrinsics")


def test_a_rotation_with_float_noise_from_json_is_still_rigid(record, members):
    """Poses pass through float32 and JSON in real converters: 1e-6 off orthonormal is a rotation."""
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    noisy = rotation.astype(np.float32).astype(np.float64) + 1e-6
    meta = validate_meta(_edit(record, "views.1.cam_to_world", _pose(noisy)), members, where=WHERE)
    assert meta.views[1].cam_to_world[0][0] == pytest.approx(np.cos(angle), abs=1e-5)


def test_a_record_checked_without_a_place_is_named_sample():
    """(mutation testing: the default ``where`` upper-cased survived, every caller naming its own.)"""
    with pytest.raises(ShardFormatError, match=r"^sample: field 'format' is None, expected 'psfm-scene'$"):
        validate_meta({})


def test_an_unknown_metric_scale_is_refused_naming_the_choices(record):
    """(mutation testing: the message lost survived.)"""
    expected = "field 'metric_scale' is 'metres', expected one of ('gt', 'sensor_depth', 'predicted', 'none')"
    with pytest.raises(ShardFormatError, match=f"^{re.escape(WHERE)}: {re.escape(expected)}$"):
        validate_meta({**record, "metric_scale": "metres"}, None, where=WHERE)
