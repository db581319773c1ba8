"""Real scene annotations, quirk by quirk: tilted boxes, any axis order, a floor at -1 m, no colours, exact
duplicates, misspelled fields, a scene with 23 chairs, and the layouts and spellings of ScanNet, ScanNet++,
ARKitScenes and VSI-Bench's metadata.

Expected answers are computed here from the raw annotation numbers with other mathematics than the package
(a brute-force search over yaw for the box covering a tilted one, raw z values for the floor, plain counting
of labels for names and counts), so a bug in ``psfm.qa`` cannot agree with itself.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pytest

from psfm.commands import qa as qa_command
from psfm.datamodules.shardlists import resolve_shards
from psfm.qa.annotations import read_annotations, read_scene_annotation
from psfm.qa.config import GenerationConfig
from psfm.qa.generate import generate_questions
from psfm.qa.placement import place_box
from psfm.qa.reasons import SkipLog
from psfm.qa.schema import SchemaError
from psfm.qa.shard_io import iter_scenes
from psfm.qa.sources import facts_from_meta

from .conftest import meta_of
from .test_commands import compose_command

CONFIG = GenerationConfig(per_task=50, per_scene=100_000)


def rotation(yaw_deg: float, tilt_deg: float = 0.0, tilt_axis: str = "x") -> np.ndarray:
    """R = Rz(yaw) @ R_tilt: a box yawed, then tipped about its own x (or y) axis."""
    yaw, tilt = math.radians(yaw_deg), math.radians(tilt_deg)
    rz = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    c, s = math.cos(tilt), math.sin(tilt)
    tip = (
        np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        if tilt_axis == "x"
        else np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    )
    return rz @ tip


def obb(center, lengths, matrix: np.ndarray, order=(0, 1, 2)) -> dict:
    """An ARKitScenes / ScanNet++ style box: ``normalizedAxes`` nine numbers axis after axis, in ``order``."""
    axes = [matrix[:, k].tolist() for k in order]
    return {
        "centroid": list(center),
        "axesLengths": [lengths[k] for k in order],
        "normalizedAxes": [v for axis in axes for v in axis],
    }


def corners(box: dict) -> np.ndarray:
    axes = np.array(box["normalizedAxes"]).reshape(3, 3)  # one axis per row
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    return (signs * np.array(box["axesLengths"]) / 2) @ axes + np.array(box["centroid"])


def brute_force_cover(box: dict) -> tuple[float, float, float]:
    """(footprint area, height, bottom) of the best yaw-only box covering the corners, by trying every 0.01°."""
    points = corners(box)
    best = math.inf
    for step in range(9000):
        angle = math.radians(step / 100)
        u = points[:, 0] * math.cos(angle) + points[:, 1] * math.sin(angle)
        v = -points[:, 0] * math.sin(angle) + points[:, 1] * math.cos(angle)
        best = min(best, (u.max() - u.min()) * (v.max() - v.min()))
    return best, float(points[:, 2].max() - points[:, 2].min()), float(points[:, 2].min())


def facts_of(data, tmp_path, name: str = "scene0000_00", views=None, meta_extra: dict | None = None):
    """Facts of an annotation file written as ``name.json`` (a scene with no views unless ``views`` are given)."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    annotation = read_scene_annotation(path)
    meta = {
        "scene_id": name,
        "image_size": None,
        "pose_source": "none",
        "metric_scale": "gt",
        "views": [],
        "objects": annotation.objects,
        "room": annotation.room,
        "source": {"object_counts": annotation.counts} if annotation.counts else {},
        **(meta_extra or {}),
    }
    skips = SkipLog()
    return facts_from_meta(meta, skips), skips


def distinct(entries: list[dict]) -> list[dict]:
    """The entries with exact repeats removed (the annotation's objects, as a reader would count them)."""
    seen, out = set(), []
    for entry in entries:
        key = json.dumps(entry, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def referents(question, entries: list[dict]) -> list[str]:
    """The object names a question uses ("red chair", "table"), found in its text among the names the
    annotation allows at all (a category, or a colour and a category)."""
    names = {e["label"] for e in entries} | {f"{e['color']} {e['label']}" for e in entries if e.get("color")}
    pattern = r"\bthe (" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b"
    return re.findall(pattern, question.stem)


def picks_out_one(name: str, entries: list[dict]) -> bool:
    """Whether ``name`` fits exactly one annotated object (a colour only counts when its category all have one)."""
    *colour, label = name.rsplit(" ", 1) if " " in name else [name]
    same = [e for e in distinct(entries) if e["label"] == label]
    if not colour:
        return len(same) == 1
    return all(e.get("color") for e in same) and sum(e.get("color") == colour[0] for e in same) == 1


def furniture(floor: float = 0.0, tilt_deg: float = 0.0, chairs: int = 1) -> list[dict]:
    """A room's objects standing on a floor at ``floor``: chairs in a row, a table, a sofa, a lamp on the table."""
    entries = []
    for k in range(chairs):
        box = obb((0.8 * k, 0.0, floor + 0.45), (0.5, 0.5, 0.9), rotation(10 * k, tilt_deg, "x" if k % 2 else "y"))
        entries.append({"label": "chair", **box})
    entries.append({"label": "table", **obb((1.0, 2.5, floor + 0.375), (1.6, 0.9, 0.75), rotation(5))})
    entries.append({"label": "sofa", **obb((-2.0, 3.0, floor + 0.4), (2.0, 0.9, 0.8), rotation(90))})
    entries.append({"label": "lamp", **obb((1.2, 2.6, floor + 0.75 + 0.25), (0.3, 0.3, 0.5), rotation(0))})
    return entries


# --- tilted boxes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("yaw", "tilt", "axis"), [(0, 7, "x"), (30, 7, "y"), (-65, 12, "x"), (10, 2.5, "y")])
def test_a_tilted_box_becomes_the_smallest_yaw_box_covering_it(yaw, tilt, axis):
    box = obb((1.0, -2.0, 0.45), (0.5, 0.7, 0.9), rotation(yaw, tilt, axis))
    placement = place_box({"centroid": box["centroid"], "axes_lengths": box["axesLengths"],
                           "normalized_axes": box["normalizedAxes"]})  # fmt: skip
    area, height, low = brute_force_cover(box)
    placed = placement.box
    assert placement.levelled and placement.tilt_deg == pytest.approx(tilt, abs=1e-6)
    assert placed.size[0] * placed.size[1] == pytest.approx(area, rel=1e-4)
    assert placed.size[2] == pytest.approx(height) and placed.center[2] - placed.size[2] / 2 == pytest.approx(low)
    c, s = math.cos(placed.yaw), math.sin(placed.yaw)
    local = (corners(box) - np.array(placed.center)) @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    assert np.all(np.abs(local) <= np.array(placed.size) / 2 + 1e-9)  # every corner inside


def test_tilted_boxes_are_kept_counted_and_reported(tmp_path):
    facts, skips = facts_of(furniture(tilt_deg=7.0, chairs=5), tmp_path)
    assert len(facts.objects) == 8 and not facts.unplaced
    assert facts.notes["objects/placed/levelled"] == 5
    assert facts.notes["max_tilt_deg"] == pytest.approx(7.0)
    assert facts.floor_height == pytest.approx(0.0, abs=1e-9)  # upright bottoms: a tipped box's corners dip below
    counts = [q for q in generate_questions(facts, CONFIG) if q.task == "object_counting" and "chair" in q.stem]
    assert counts and all(q.answer_value == 5.0 for q in counts)


# --- any axis order ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("order", "name"), [((2, 0, 1), "first"), ((0, 2, 1), "second"), ((0, 1, 2), "third")])
def test_the_up_axis_may_be_listed_in_any_position(order, name, tmp_path):
    matrix = rotation(25)
    entries = [{"label": "cabinet", **obb((0.3, 0.4, 0.95), (1.2, 0.5, 1.9), matrix, order)}]  # 1.9 m tall
    facts, _ = facts_of(entries, tmp_path)
    (cabinet,) = facts.objects
    assert facts.notes[f"objects/placed/up_axis_{name}"] == 1 and not facts.notes.get("objects/placed/levelled")
    assert cabinet.box.size[2] == pytest.approx(1.9)
    assert sorted(cabinet.box.size[:2]) == pytest.approx([0.5, 1.2])
    long_axis = cabinet.box.yaw if cabinet.box.size[0] > cabinet.box.size[1] else cabinet.box.yaw + math.pi / 2
    assert math.sin(long_axis - math.radians(25)) == pytest.approx(0.0, abs=1e-9)  # the 1.2 m side runs at 25°


# --- floors --------------------------------------------------------------------------------------------------


def stack_heights(facts, entries) -> list[tuple[str, str, float]]:
    return [
        (*referents(q, entries)[:2], q.answer_value)
        for q in generate_questions(facts, CONFIG)
        if q.task == "stack_height" and q.format == "free_form"
    ]


def cameras_around(floor: float) -> dict:
    """``meta.json`` fields of four posed 640 x 480 views around the furniture (no images, no masks)."""
    from psfm.geometry import intrinsics_from_fov, look_at

    intrinsics = intrinsics_from_fov(640, 480, 70.0).tolist()
    eyes = [(0.0, -4.0), (4.0, 1.0), (0.0, 6.0), (-5.0, 1.0)]
    target = np.array([0.0, 1.5, floor + 0.5])
    poses = [look_at(np.array([x, y, floor + 1.5]), target).tolist() for x, y in eyes]
    return {
        "image_size": [480, 640],
        "pose_source": "gt",
        "views": [{"intrinsics": intrinsics, "cam_to_world": pose} for pose in poses],
    }


def test_heights_above_a_floor_at_minus_one_metre(tmp_path):
    entries = furniture(floor=-1.0)
    facts, _ = facts_of(entries, tmp_path, meta_extra=cameras_around(-1.0))
    assert facts.floor_source == "box_bottoms" and facts.floor_height == pytest.approx(-1.0)
    raw = {e["label"]: e for e in entries}
    asked = stack_heights(facts, entries)
    assert asked
    for moved, base, value in asked:  # top of the base above the floor, plus the moved object's height
        base_box, moved_box = raw[base], raw[moved]
        expected = base_box["centroid"][2] + 0.5 * base_box["axesLengths"][2] + 1.0 + moved_box["axesLengths"][2]
        assert value == pytest.approx(expected), (moved, base)


def test_a_floor_box_or_the_annotation_places_the_floor(tmp_path):
    entries = furniture(floor=-0.93)
    floor = obb((0, 0, -0.95), (8.0, 6.0, 0.04), rotation(30, 3.0))  # tipped 3°: its corners 0.2 m off level
    with_floor_box = [*entries, {"label": "floor", **floor}]
    facts, _ = facts_of(with_floor_box, tmp_path)
    assert (facts.floor_source, facts.floor_height) == ("floor_box", pytest.approx(-0.93))
    assert not any(o.category == "floor" for o in facts.objects) and facts.notes["objects/structure"] == 1
    facts, _ = facts_of({"objects": entries, "room": {"floorHeight": -0.9}}, tmp_path)
    assert (facts.floor_source, facts.floor_height) == ("annotation", -0.9)


def test_the_floor_comes_from_depth_when_the_annotation_has_none(world_scenes):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    meta["room"] = None
    for record in meta["objects"]:  # the frame moved down by 1 m: boxes and cameras alike
        record["box"]["centroid"][2] -= 1.0
    for view in meta["views"]:
        view["cam_to_world"][2][3] -= 1.0
    facts = facts_from_meta(meta, SkipLog(), [v.instance for v in views], [v.depth for v in views])
    assert facts.floor_source == "depth" and facts.floor_height == pytest.approx(-1.0, abs=0.02)
    assert facts.room_source == "depth"
    width, depth = scene.room.size[:2]
    assert facts.floor_area == pytest.approx(width * depth, rel=0.1)


# --- names and counts without colours --------------------------------------------------------------------------


def test_a_scene_with_23_chairs_counts_23_and_never_says_the_chair(tmp_path):
    entries = furniture(tilt_deg=7.0, chairs=23)
    entries[3]["axesLengths"] = [0.0, 0.5, 0.9]  # one chair's box is degenerate: it cannot be placed
    entries[4]["centroid"] = [float("nan"), 0.0, 0.0]  # another's is not finite (JSON NaN)
    facts, skips = facts_of(entries, tmp_path)
    assert len(facts.objects) == 24 and len(facts.unplaced) == 2
    questions = generate_questions(facts, CONFIG, skips)
    counts = {q.stem: q.answer_value for q in questions if q.task == "object_counting"}
    assert counts["How many chair(s) are in this room?"] == 23.0
    used = [name for q in questions for name in referents(q, entries)]
    assert used and "chair" not in used
    assert all(picks_out_one(name, entries) for name in used)  # every name picks out one annotated object
    assert skips.counts["duplicate_category_without_colour"] == 21


def test_an_object_without_a_usable_box_still_makes_its_category_ambiguous(tmp_path):
    entries = furniture(chairs=2)
    entries.append({"label": "sofa", **obb((3.0, 3.0, 0.4), (2.0, 0.9, 0.0), rotation(0))})  # a flat second sofa
    facts, skips = facts_of(entries, tmp_path)
    assert [o.category for o in facts.unplaced] == ["sofa"]
    used = {name for q in generate_questions(facts, CONFIG, skips) for name in referents(q, entries)}
    assert "table" in used and "sofa" not in used
    assert skips.counts["duplicate_category_without_colour"] == 3  # two chairs, the placed sofa


def test_colours_name_objects_only_when_they_tell_them_apart(tmp_path):
    entries = furniture(chairs=3)
    entries[0]["color"], entries[1]["color"], entries[2]["color"] = "red", "blue", "red"
    entries[4]["color"] = "brown"  # the only sofa: named by category alone
    facts, skips = facts_of(entries, tmp_path)
    questions = generate_questions(facts, CONFIG, skips)
    used = {name for q in questions for name in referents(q, entries)}
    assert "blue chair" in used and "sofa" in used
    assert not used & {"red chair", "chair", "brown sofa"}
    assert all(picks_out_one(name, entries) for name in used)
    assert skips.counts["duplicate_label"] == 2


# --- duplicates ------------------------------------------------------------------------------------------------


def test_exact_duplicates_are_merged_and_reported(tmp_path):
    entries = furniture(chairs=2)
    entries += [dict(entries[0]), dict(entries[2])]  # chair 0 and the table, listed twice
    facts, skips = facts_of(entries, tmp_path)
    assert facts.notes["objects/merged_duplicates"] == 2 and skips.counts["duplicate_box_merged"] == 2
    assert Counter(o.category for o in facts.objects) == {"chair": 2, "table": 1, "sofa": 1, "lamp": 1}
    used = {name for q in generate_questions(facts, CONFIG) for name in referents(q, entries)}
    assert "table" in used and all(picks_out_one(name, entries) for name in used)  # unique after the merge


# --- spellings and layouts of real formats --------------------------------------------------------------------


def canonical(facts) -> list[tuple]:
    return sorted(
        (o.category, tuple(np.round(o.box.center, 6)), tuple(np.round(sorted(o.box.size), 6))) for o in facts.objects
    )


def test_the_layouts_of_scannetpp_arkitscenes_and_vsibench_read_alike(tmp_path):
    entries = furniture(floor=-1.0, chairs=2)
    plain, _ = facts_of(entries, tmp_path, "plain")
    scannetpp = {"segGroups": [{"id": k, "objectId": k, "label": e["label"], "segments": [1, 2],
                                "obb": {key: e[key] for key in ("centroid", "axesLengths", "normalizedAxes")}}
                               for k, e in enumerate(entries)]}  # fmt: skip
    fields = ("centroid", "axesLengths", "normalizedAxes")
    arkit = {"data": [{"label": e["label"], "uid": f"u{k}", "segments": {"obbAligned": {key: e[key] for key in fields}}}
                      for k, e in enumerate(entries)]}  # fmt: skip
    by_category: dict[str, list] = {}
    for e in entries:
        by_category.setdefault(e["label"], []).append({k: e[k] for k in ("centroid", "axesLengths", "normalizedAxes")})
    snake = [{"category": e["label"], "center": e["centroid"], "axes_lengths": e["axesLengths"],
              "normalized_axes": e["normalizedAxes"]} for e in entries]  # fmt: skip
    for name, data in [("scannetpp", scannetpp), ("arkit", arkit), ("per_category", by_category), ("snake", snake)]:
        facts, _ = facts_of(data, tmp_path, name)
        assert canonical(facts) == canonical(plain), name
    metadata = {"scene0000_00": {"room_size": 23.4, "object_counts": {"chair": 2, "table": 1, "sofa": 1, "lamp": 1},
                                 "object_bboxes": by_category},
                "scene0001_00": {"room_size": 9.0, "object_counts": {"bed": 1}, "object_bboxes": {}}}  # fmt: skip
    path = tmp_path / "scannet_metadata.json"
    path.write_text(json.dumps(metadata))
    scenes = read_annotations(path)
    assert [(s.scene_id, len(s.objects), s.room) for s in scenes] == [
        ("scene0000_00", 5, {"floor_area": 23.4}),
        ("scene0001_00", 0, {"floor_area": 9.0}),
    ]


def test_a_room_size_given_as_one_number_is_the_room_size_answer(tmp_path):
    facts, _ = facts_of({"room_size": 23.4, "objects": furniture()}, tmp_path)
    (room,) = [q for q in generate_questions(facts, CONFIG) if q.task == "room_size_estimation" and q.unit == "m2"][:1]
    assert room.answer_value == 23.4 and facts.room_source == "annotation_area"
    polygon = [[0, 0], [4, 0], [4, 3], [2, 3], [2, 5], [0, 5]]  # an L: 4 x 3 + 2 x 2 = 16 m²
    facts, _ = facts_of({"floor_polygon": polygon, "objects": furniture()}, tmp_path)
    assert facts.floor_area == pytest.approx(16.0) and facts.room_source == "annotation_polygon"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"label": "chair", "centroid": [0, 0, 0], "axesLength": [1, 1, 1], "yaw": 0}, "no box side lengths"),
        ({"label": "chair", "centroid": [0, 0, 0], "axes_lengths": [1, 1, 1], "normalised_axis": [1, 0, 0]},
         "no orientation"),
        ({"labl": "chair", "centroid": [0, 0, 0], "axes_lengths": [1, 1, 1], "yaw": 0}, "no label"),
        ({"label": "chair", "obb": {"centre_point": [0, 0, 0]}}, "no box centre"),
    ],
)  # fmt: skip
def test_misspelled_fields_stop_psfm_qa_naming_the_file_and_field(entry, field, tiny_world_shards, tmp_path):
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    for parsed in iter_scenes(resolve_shards(str(tiny_world_shards)).urls):
        (boxes / f"{parsed.key}.json").write_text(json.dumps([entry]))
    overrides = [f"data={tiny_world_shards}", f"out={tmp_path / 'qa'}", "progress=false", f"boxes={boxes}"]
    with pytest.raises(SchemaError, match=field) as error:
        qa_command.run(compose_command("qa", overrides))
    assert str(boxes) in str(error.value) and "[0]" in str(error.value)


def test_a_shard_whose_objects_are_misspelled_stops_psfm_qa_naming_shard_scene_and_field(tmp_path):
    from psfm.datamodules.sample import build_sample
    from psfm.datamodules.writer import ShardWriter

    box = {"centroid": [0, 0, 0.4], "axesLength": [1, 1, 0.8], "normalizedAxes": [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    sample = build_sample(
        "scene0000_00", [], [], None, "none", {"kind": "hand-made"}, objects=[{"category": "bed", "box": box}]
    )
    with ShardWriter(tmp_path / "shards", 4, info={"producer": "test"}) as writer:
        writer.write(sample)
    overrides = [f"data={tmp_path / 'shards'}", f"out={tmp_path / 'qa'}", "progress=false"]
    with pytest.raises(SchemaError, match=r"shard-000000\.tar: scene0000_00: objects\[0\]\.box: no box side lengths"):
        qa_command.run(compose_command("qa", overrides))
