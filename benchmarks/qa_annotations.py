"""Spatial QA on scene annotations in the real formats (issue #13): fixtures with the quirks of ScanNet,
ScanNet++ and ARKitScenes, written in their layouts, converted (``psfm convert boxes``) and asked (``psfm qa``).

Fixtures (seeded; rooms furnished with categories at typical sizes, categories repeating as in real rooms):

  scannet      VSI-Bench's ``scannet_metadata.json``, many scenes in one file: ``object_bboxes`` per category
               (``axesLengths``, ``normalizedAxes``), ``room_size`` as one number, ``object_counts``; every box
               tilted 3-9 degrees about a random horizontal axis (ScanNet's are ~7), the floor at -0.9..-1.0 m, no
               colours, wall and floor boxes, one scene with 23 chairs, one box in 40 listed twice
  scannetpp    ``<scene>/scans/segments_anno.json`` per scene (``segGroups`` + ``obb``): level boxes whose up axis is
               listed first, second or third at random, the floor at 0, no room
  arkitscenes  ``<video>/<video>_3dod_annotation.json`` per scene (``data`` + ``segments.obbAligned``): up axis
               third, one box in 30 degenerate (a side of 0), no room

Reported per fixture: boxes by outcome, where the floor and the room came from, count agreement (psfm's count
of every category against the annotation's own ``object_counts``, and every counting question's answer against
the count the fixture was made with), and the share of questions whose referents are unique: each object name
a question uses (read from its text) must fit exactly one object of the raw annotation file.

    python benchmarks/qa_annotations.py [--scenes 12] [--out /tmp/qa_annotations]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from psfm.converters import convert  # noqa: E402
from psfm.datamodules.shardlists import resolve_shards  # noqa: E402
from psfm.qa.config import GenerationConfig  # noqa: E402
from psfm.qa.dataset import build_qa_dataset  # noqa: E402
from psfm.qa.lifting.config import LiftingConfig  # noqa: E402
from psfm.qa.shard_io import iter_scenes  # noqa: E402

SIZES = {  # category: (length, width, height) ranges in metres
    "chair": ((0.45, 0.6), (0.45, 0.6), (0.8, 1.0)),
    "table": ((1.2, 1.8), (0.7, 1.0), (0.7, 0.78)),
    "sofa": ((1.8, 2.4), (0.8, 1.0), (0.7, 0.9)),
    "bed": ((1.9, 2.1), (1.4, 1.8), (0.5, 0.7)),
    "cabinet": ((0.8, 1.2), (0.4, 0.6), (0.8, 2.0)),
    "lamp": ((0.3, 0.5), (0.3, 0.5), (0.4, 1.6)),
    "tv": ((0.9, 1.4), (0.08, 0.15), (0.5, 0.8)),
    "trash can": ((0.3, 0.4), (0.3, 0.4), (0.4, 0.7)),
    "door": ((0.8, 1.0), (0.05, 0.1), (2.0, 2.1)),
    "shelf": ((0.8, 1.6), (0.3, 0.4), (1.0, 2.0)),
    "desk": ((1.2, 1.6), (0.6, 0.8), (0.72, 0.76)),
    "refrigerator": ((0.6, 0.8), (0.6, 0.75), (1.7, 1.9)),
}
FLOORS: dict[str, float] = {}  # scene id -> the floor height the fixture was made with (0 unless set)
WEIGHTS = {"chair": 5, "table": 2, "cabinet": 2, "lamp": 2, "trash can": 2, "shelf": 1.5, "door": 1.5}


def rotation(yaw: float, tilt: float = 0.0, about: float = 0.0) -> np.ndarray:
    """R: yaw about +z after a tilt of ``tilt`` radians about the horizontal axis at angle ``about``."""
    axis = np.array([math.cos(about), math.sin(about), 0.0])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    tip = np.eye(3) + math.sin(tilt) * k + (1 - math.cos(tilt)) * k @ k
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ tip


def furnish(rng: np.random.Generator, chairs: int | None = None) -> tuple[list[tuple[str, np.ndarray, float]], float]:
    """(category, size, yaw) of a room's objects, and the room's floor area."""
    width, depth = rng.uniform(3.5, 8.0, size=2)
    names = list(SIZES)
    weights = np.array([WEIGHTS.get(name, 1.0) for name in names])
    count = int(rng.integers(8, 26))
    categories = list(rng.choice(names, size=count, p=weights / weights.sum()))
    if chairs is not None:
        categories = [c for c in categories if c != "chair"] + ["chair"] * chairs
    objects = []
    for category in categories:
        size = np.array([rng.uniform(*bounds) for bounds in SIZES[category]])
        objects.append((str(category), size, float(rng.uniform(-math.pi, math.pi))))
    return objects, float(width * depth)


def box_json(center, size, matrix: np.ndarray, order=(0, 1, 2)) -> dict:
    axes = [matrix[:, k].tolist() for k in order]
    return {
        "centroid": [float(v) for v in center],
        "axesLengths": [float(size[k]) for k in order],
        "normalizedAxes": [v for axis in axes for v in axis],
    }


def placed(rng, objects, floor: float, area: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(category, centre, size) somewhere in the room: on the floor give or take 2 cm of annotation noise, half
    the TVs wall-mounted 0.8-1.2 m up."""
    half = math.sqrt(area) / 2
    out = []
    for category, size, _ in objects:
        lift = rng.uniform(0.8, 1.2) if category == "tv" and rng.random() < 0.5 else 0.0
        bottom = floor + lift + rng.normal(0.0, 0.02)
        out.append((category, np.array([*rng.uniform(-half, half, 2), bottom + size[2] / 2]), size))
    return out


def scannet(root: Path, scenes: int, rng: np.random.Generator) -> dict[str, Counter]:
    metadata, truth = {}, {}
    for index in range(scenes):
        objects, area = furnish(rng, chairs=23 if index == 0 else None)
        floor = float(rng.uniform(-1.0, -0.9))
        per_category: dict[str, list] = {}
        positions = placed(rng, objects, floor, area)
        for (category, center, size), (_, _, yaw) in zip(positions, objects, strict=True):
            tilt, about = math.radians(rng.uniform(3, 9)), rng.uniform(0, 2 * math.pi)
            box = box_json(center, size, rotation(yaw, tilt, about))
            per_category.setdefault(category, []).append(box)
            if rng.random() < 1 / 40:
                per_category[category].append(dict(box))  # listed twice
        half = math.sqrt(area) / 2
        if index % 2 == 0:  # half the scenes annotate the floor itself
            per_category["floor"] = [box_json([0, 0, floor - 0.02], [2 * half, 2 * half, 0.04], np.eye(3))]
        per_category["wall"] = [box_json([half, 0, floor + 1.3], [0.1, 2 * half, 2.6], np.eye(3))]
        counts = Counter(c for c, _, _ in objects)
        scene_id = f"scene{index:04d}_00"
        FLOORS[scene_id] = floor
        metadata[scene_id] = {"video_path": f"scannet/{scene_id}.mp4", "dataset": "scannet", "room_size": area,
                              "object_counts": dict(counts), "object_bboxes": per_category}  # fmt: skip
        truth[scene_id] = counts
    (root / "scannet_metadata.json").write_text(json.dumps(metadata))
    return truth


def scannetpp(root: Path, scenes: int, rng: np.random.Generator) -> dict[str, Counter]:
    truth = {}
    for index in range(scenes):
        objects, area = furnish(rng)
        groups = []
        for k, ((category, center, size), (_, _, yaw)) in enumerate(
            zip(placed(rng, objects, 0.0, area), objects, strict=True)
        ):
            order = [(2, 0, 1), (0, 2, 1), (0, 1, 2)][int(rng.integers(3))]  # up axis first, second or third
            box = box_json(center, size, rotation(yaw), order)
            groups.append({"id": k, "objectId": k, "label": category, "segments": [k], "obb": box})
        scene_id = f"{index + 1:02d}{rng.bytes(4).hex()}"
        (root / scene_id / "scans").mkdir(parents=True)
        (root / scene_id / "scans" / "segments_anno.json").write_text(json.dumps({"segGroups": groups}))
        truth[scene_id] = Counter(c for c, _, _ in objects)
    return truth


def arkitscenes(root: Path, scenes: int, rng: np.random.Generator) -> dict[str, Counter]:
    truth = {}
    for index in range(scenes):
        objects, area = furnish(rng)
        data = []
        for k, ((category, center, size), (_, _, yaw)) in enumerate(
            zip(placed(rng, objects, 0.0, area), objects, strict=True)
        ):
            if rng.random() < 1 / 30:
                size = size * np.array([1.0, 0.0, 1.0])  # degenerate: no width
            obb = box_json(center, size, rotation(yaw))
            data.append({"label": category, "uid": f"{index}-{k}", "segments": {"obbAligned": obb, "obb": obb}})
        video = f"4100{index:04d}"
        (root / video).mkdir(parents=True)
        (root / video / f"{video}_3dod_annotation.json").write_text(json.dumps({"data": data, "stats": {}}))
        truth[video] = Counter(c for c, _, _ in objects)
    return truth


def raw_objects(path: Path) -> dict[str, list[tuple[str, str | None]]]:
    """Every scene's (label, colour) pairs read straight from an annotation file, exact repeats removed."""
    data = json.loads(path.read_text())
    if "segGroups" in data:
        return {path.parent.parent.name: [(g["label"], None) for g in data["segGroups"]]}
    if "data" in data:
        return {path.stem.removesuffix("_3dod_annotation"): [(d["label"], None) for d in data["data"]]}
    out = {}
    for scene, record in data.items():
        boxes = [(c, json.dumps(b, sort_keys=True)) for c, bs in record["object_bboxes"].items() for b in bs]
        out[scene] = [(c, None) for c, _ in dict.fromkeys(boxes)]
    return out


def unique_referents(questions: list[dict], objects: dict[str, list[tuple[str, str | None]]]) -> tuple[int, int]:
    """(questions naming objects, those whose every name fits exactly one raw annotated object)."""
    asked = unique = 0
    for question in questions:
        labels = Counter(label for label, _ in objects[question["scene_id"]])
        names = sorted(labels, key=len, reverse=True)
        pattern = r"\bthe (" + "|".join(map(re.escape, names)) + r")\b"
        used = re.findall(pattern, question["stem"])
        if not used or question["task"] == "object_counting":
            continue
        asked += 1
        unique += all(labels[name] == 1 for name in used)
    return asked, unique


def run(name: str, writer, scenes: int, work: Path, seed: int) -> dict:
    annotations = work / name / "annotations"
    annotations.mkdir(parents=True)
    truth = writer(annotations, scenes, np.random.default_rng(seed))
    convert("boxes", annotations, work / name / "shards", progress=False)
    config = GenerationConfig(per_task=4, per_scene=200)
    urls = resolve_shards(str(work / name / "shards")).urls
    report = build_qa_dataset(urls, work / name / "qa", config, LiftingConfig(), images=False, progress=False)
    summary = json.loads((work / name / "qa" / "summary.json").read_text())
    questions = [json.loads(line)["qa"] for line in (work / name / "qa" / "questions.jsonl").read_text().splitlines()]
    objects = {}
    for path in annotations.rglob("*.json"):
        objects.update(raw_objects(path))
    counting = [q for q in questions if q["task"] == "object_counting"]
    right = sum(q["answer_value"] == truth[q["scene_id"]][q["spec"]["category"]] for q in counting)
    asked, unique = unique_referents(questions, objects)
    floors = {scene.key: scene.meta.raw["qa"]["floor"]["height"] for scene in iter_scenes(
        resolve_shards(str(work / name / "qa" / "shards")).urls)}  # fmt: skip
    errors = [abs(height - FLOORS.get(key, 0.0)) for key, height in floors.items()]
    return {
        "scenes": report.scenes,
        "questions": report.questions,
        "objects": summary["objects"],
        "max_tilt_deg": summary["max_tilt_deg"],
        "floors": summary["floors"],
        "floor_error_m": {"mean": float(np.mean(errors)), "max": float(np.max(errors))},
        "rooms": summary["rooms"],
        "annotation_counts": summary["annotation_counts"],
        "count_questions_right": f"{right}/{len(counting)}",
        "unique_referents": f"{unique}/{asked}",
        "notes": summary["notes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the fixtures and outputs here")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="qa_annotations_"))
    if work.exists() and args.out is not None:
        shutil.rmtree(work)
    results = {}
    for offset, (name, writer) in enumerate(
        (("scannet", scannet), ("scannetpp", scannetpp), ("arkitscenes", arkitscenes))
    ):
        results[name] = run(name, writer, args.scenes, work, args.seed + offset)
    print(json.dumps(results, indent=2))
    if args.out is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
