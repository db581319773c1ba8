"""``psfm convert boxes``: annotation files of oriented boxes -> shards ``psfm qa`` reads, with or without frames.

The annotations are written in the real layouts (ARKitScenes ``data`` + ``segments.obbAligned``, ScanNet++
``segGroups`` + ``obb`` under ``<scene>/scans/``, VSI-Bench's ``*_metadata.json`` of many scenes) from world
scenes whose truth is known; answers are checked against that truth, not against psfm's own helpers.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from psfm.commands import convert as convert_command
from psfm.commands import qa as qa_command
from psfm.converters import ConvertOptions, convert
from psfm.converters.options import BoxesOptions
from psfm.qa.schema import SchemaError
from psfm.worlds.sampler import WorldConfig, sample_scene
from tests.converters.captures import read_shards, rendered
from tests.converters.test_images import write_folder
from tests.converters.test_scannet import write_scannet

SMALL = WorldConfig(views_per_scene=4, height=48, width=64)


def world_boxes(index: int, up_first: bool = False) -> list[dict]:
    """The world scene's objects as annotation boxes (camelCase, axes one after another; up axis first if asked)."""
    entries = []
    for obj in sample_scene(index, SMALL, "train").objects:
        c, s = math.cos(obj.box.yaw), math.sin(obj.box.yaw)
        axes, lengths = [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]], list(obj.box.size)
        if up_first:
            axes, lengths = [axes[2], axes[0], axes[1]], [lengths[2], lengths[0], lengths[1]]
        box = {"centroid": list(obj.box.center), "axesLengths": lengths, "normalizedAxes": sum(axes, [])}
        entries.append({"label": obj.category, "objectId": obj.instance_id, "obb": box})
    return entries


def run_qa(shards: Path, out: Path) -> tuple[dict, list[dict]]:
    qa_command.run(qa_command.QACommand(data=str(shards), out=str(out), progress=False))
    summary = json.loads((out / "summary.json").read_text())
    return summary, [json.loads(line)["qa"] for line in (out / "questions.jsonl").read_text().splitlines()]


def test_scene_files_in_their_datasets_layouts_become_annotation_only_scenes(tmp_path):
    root = tmp_path / "annotations"
    (root / "0a5c013435" / "scans").mkdir(parents=True)
    (root / "0a5c013435" / "scans" / "segments_anno.json").write_text(json.dumps({"segGroups": world_boxes(0, True)}))
    arkit = [{"label": e["label"], "segments": {"obbAligned": e["obb"]}} for e in world_boxes(1)]
    (root / "41069025").mkdir()
    (root / "41069025" / "41069025_3dod_annotation.json").write_text(json.dumps({"data": arkit}))
    report = convert("boxes", root, tmp_path / "shards", progress=False)
    assert report.written == 2 and report.views == 0
    scenes = read_shards(tmp_path / "shards")
    assert set(scenes) == {"0a5c013435", "41069025"}
    meta = scenes["41069025"][0]
    assert meta.num_views == 0 and meta.image_size is None and meta.pose_source == "none"

    summary, questions = run_qa(tmp_path / "shards", tmp_path / "qa")
    assert summary["scenes"] == 2 and summary["scenes_without_views"] == 2 and len(questions) > 10
    assert any("without views" in note for note in summary["notes"]) and not (tmp_path / "qa" / "images").exists()
    assert all(q["views"] == [] and q["family"] == "vsibench" for q in questions)
    assert summary["objects"]["objects/placed/up_axis_first"] == len(world_boxes(0))
    world = {"0a5c013435": 0, "41069025": 1}
    truths = {key: Counter(o.category for o in sample_scene(i, SMALL, "train").objects) for key, i in world.items()}
    counted = [q for q in questions if q["task"] == "object_counting"]  # against the world's own objects
    assert counted and all(q["answer_value"] == truths[q["scene_id"]][q["spec"]["category"]] for q in counted)


def test_one_file_of_many_scenes_with_room_sizes_and_counts(tmp_path):
    metadata = {}
    for index in range(3):
        per_category: dict[str, list] = {}
        for entry in world_boxes(index):
            per_category.setdefault(entry["label"], []).append(entry["obb"])
        counts = {category: len(boxes) for category, boxes in per_category.items()}
        if index == 2:
            counts[next(iter(counts))] += 1  # an annotation whose own count is off by one
        metadata[f"scene{index:04d}_00"] = {"room_size": 20.0 + index, "object_counts": counts,
                                            "object_bboxes": per_category, "video_path": f"{index}.mp4"}  # fmt: skip
    path = tmp_path / "scannet_metadata.json"
    path.write_text(json.dumps(metadata))
    convert("boxes", path, tmp_path / "shards", progress=False)
    summary, questions = run_qa(tmp_path / "shards", tmp_path / "qa")
    assert summary["scenes"] == 3 and summary["rooms"] == {"annotation_area": 3}
    agreement = summary["annotation_counts"]
    assert agreement["compared"] - agreement["agreeing"] == 1 and "scene0002_00" in agreement["disagreements"][0]
    rooms = {q["scene_id"]: q["answer_value"] for q in questions if q["task"] == "room_size_estimation"}
    assert rooms and all(value == 20.0 + int(scene[5:9]) for scene, value in rooms.items())
    rows = [json.loads(line) for line in (tmp_path / "qa" / "vsibench.jsonl").read_text().splitlines()]
    assert rows and all(row["images"] == [] for row in rows)


def test_with_frames_the_capture_gives_views_masks_and_cameras(tmp_path):
    for index in range(2):
        write_scannet(tmp_path / "scans" / f"scene{index:04d}_00", rendered(index))
        scene = tmp_path / "boxes" / f"scene{index:04d}_00.json"
        scene.parent.mkdir(exist_ok=True)
        scene.write_text(json.dumps({"segGroups": world_boxes(index)}))
    options = ConvertOptions(boxes=BoxesOptions(frames=str(tmp_path / "scans"), instance_id_offset=3))
    report = convert("boxes", tmp_path / "boxes", tmp_path / "shards", options, progress=False)
    assert report.written == 2 and report.views == 8
    meta = read_shards(tmp_path / "shards")["scene0000_00"][0]
    assert meta.pose_source == "gt" and meta.raw["source"]["kind"] == "scannet"
    summary, questions = run_qa(tmp_path / "shards", tmp_path / "qa")
    assert summary["floors"] == {"depth": 2} and summary["scenes_without_cameras"] == 0
    assert {"left_right", "obj_appearance_order"} & {q["task"] for q in questions}
    assert summary["objects"].get("objects/unlinked_instance_id", 0) == 0


def test_a_scene_whose_frames_are_missing_is_skipped_and_unposed_frames_lose_their_cameras(tmp_path):
    write_folder(tmp_path / "frames" / "scene0000_00")  # world scene 0's views, unposed
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"scenes": [{"scene_id": "scene0000_00", "objects": world_boxes(0)},
                                            {"scene_id": "scene0001_00", "objects": world_boxes(1)}]}))  # fmt: skip
    options = ConvertOptions(boxes=BoxesOptions(frames=str(tmp_path / "frames"), frames_format="images"))
    report = convert("boxes", boxes, tmp_path / "shards", options, progress=False)
    assert report.written == 1 and report.skipped_scenes == {"no_frames": 1}
    meta = read_shards(tmp_path / "shards")["scene0000_00"][0]
    assert meta.num_views == 4 and meta.pose_source == "none" and "cameras_dropped" in meta.raw["source"]
    summary, questions = run_qa(tmp_path / "shards", tmp_path / "qa")
    assert summary["scenes_without_cameras"] == 1 and summary["scenes_without_masks"] == 1
    assert questions and all(q["family"] == "vsibench" for q in questions), Counter(q["task"] for q in questions)
    assert all(len(q["views"]) == 4 for q in questions)  # the images go with every (whole-scene) question


def test_an_unreadable_annotation_stops_the_command_naming_file_and_field(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.json").write_text(
        json.dumps({"data": [{"label": "chair", "segments": {"obb": {"centre": [0, 0, 0]}}}]})
    )
    with pytest.raises(SchemaError, match=r"a\.json: data\[0\]\.segments\.obb: no box side lengths"):
        convert("boxes", tmp_path, tmp_path / "out", progress=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["psfm", "boxes", f"input={tmp_path}", "out=out", "progress=false"])
    with pytest.raises(SystemExit) as stopped:
        convert_command.main()
    assert "no box side lengths" in str(stopped.value.code)
