"""Ground truth from standalone box files (``psfm qa boxes=DIR``) answers exactly as the scene's own meta.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from psfm.commands import qa as qa_command
from psfm.datamodules.shardlists import resolve_shards
from psfm.qa.annotations import read_scene_annotation
from psfm.qa.config import GenerationConfig
from psfm.qa.dataset import build_qa_dataset
from psfm.qa.lifting.config import LiftingConfig
from psfm.qa.placement import place_box
from psfm.qa.reasons import SkipLog
from psfm.qa.schema import SchemaError
from psfm.qa.shard_io import iter_scenes
from psfm.qa.sources import facts_from_meta

from .conftest import meta_of
from .test_commands import compose_command


def box_entries(objects: list[dict], flat: bool) -> list[dict]:
    """A box file's entries for meta.json objects: ``normalized_axes`` flat (axis after axis) or nested."""
    entries = []
    for record in objects:
        box = record["box"]
        axes = [value for axis in box["normalized_axes"] for value in axis] if flat else box["normalized_axes"]
        entries.append(
            {
                "label": record["category"],
                "color": record["color"],
                "instance_id": record["instance_id"],
                "centroid": box["centroid"],
                "axes_lengths": box["axes_lengths"],
                "normalized_axes": axes,
            }
        )
    return entries


@pytest.fixture(scope="module")
def box_folder(tiny_world_shards, tmp_path_factory):
    """One box file per tiny-world scene, made from the scene's own boxes (flat axes and nested axes alternate)."""
    folder = tmp_path_factory.mktemp("boxes")
    for index, scene in enumerate(iter_scenes(resolve_shards(str(tiny_world_shards)).urls)):
        meta = scene.meta.raw
        entries = box_entries(meta["objects"], flat=index % 2 == 0)
        (folder / f"{meta['scene_id']}.json").write_text(json.dumps(entries))
    return folder


def build(data, out, boxes=None):
    config = GenerationConfig(per_task=4, per_scene=1000)
    report = build_qa_dataset(
        resolve_shards(str(data)).urls, out, config, LiftingConfig(), images=False, progress=False, boxes=boxes
    )
    return report, (out / "questions.jsonl").read_text()


def test_box_file_facts_answer_like_meta_facts(tiny_world_shards, box_folder, tmp_path):
    flat = [e["normalized_axes"] for p in box_folder.glob("*.json") for e in json.loads(p.read_text())]
    flat = [axes for axes in flat if len(axes) == 9]
    assert any(abs(math.sin(2 * math.atan2(axes[1], axes[0]))) > 0.1 for axes in flat)  # transposing would show
    meta_report, meta_questions = build(tiny_world_shards, tmp_path / "meta")
    box_report, box_questions = build(tiny_world_shards, tmp_path / "boxes", boxes=box_folder)
    assert box_report.scenes == meta_report.scenes == 3 and box_report.questions > 30
    assert box_questions == meta_questions


def test_a_scene_without_box_file_is_skipped_and_counted(tiny_world_shards, box_folder, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    kept = sorted(box_folder.glob("*.json"))[1:]
    for path in kept:
        (partial / path.name).write_text(path.read_text())
    report, _ = build(tiny_world_shards, tmp_path / "out", boxes=partial)
    assert report.scenes == len(kept) and report.scenes_skipped == 1
    assert report.skips.counts["boxes/no_box_file"] == 1


BOX = '"centroid": [0, 0, 0.5], "axes_lengths": [1, 1, 1], "normalized_axes": [1, 0, 0, 0, 1, 0, 0, 0, 1]'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable JSON file"),
        ('{"label": "chair"}', "no objects found: expected one of objects, boxes"),
        ('[{"centroid": [0, 0, 0]}]', r"\[0\]: no label \(label \| category"),
        (f'[{{"label": "chair", "instance_id": 3, {BOX}}}, {{"label": "bed", "instance_id": 3, {BOX}}}]',
         r"objects\[1\]\.instance_id 3 is already another object's"),
        ('[{"label": "chair", "color": 5}]', r"\[0\]\.color must be a string"),
        ('[{"label": "chair"}]', r"\[0\]: no box \(give centroid"),
        ('[{"label": "chair", "centroid": [0, 0, 0], "axesLength": [1, 1, 1]}]', r"\[0\]: no box side lengths"),
        ('[{"label": "chair", "centroid": [0, 0, 0], "axesLengths": [1, 1, 1]}]', r"\[0\]: no orientation"),
    ],
)  # fmt: skip
def test_a_malformed_box_file_names_the_file_and_field(content, message, tmp_path):
    path = tmp_path / "scene.json"
    path.write_text(content)
    with pytest.raises(SchemaError, match=message) as error:
        read_scene_annotation(path)
    assert str(path) in str(error.value)


def test_bad_boxes_are_counted_and_ids_are_optional(world_scenes, tmp_path):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    entries = box_entries(meta["objects"], flat=True)
    entries[0]["axes_lengths"] = [0.0, 1.0, 1.0]
    del entries[1]["instance_id"]
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(entries))
    skips = SkipLog()
    facts = facts_from_meta(
        {**meta, "objects": read_scene_annotation(path).objects}, skips, [v.instance for v in views]
    )
    assert skips.counts["box_degenerate"] == 1 and len(facts.objects) == len(entries) - 1
    assert [o.category for o in facts.unplaced] == [entries[0]["label"]]  # not placed, still there
    unlinked = next(o for o in facts.objects if o.instance_id < 0)  # no id: not in the masks, visibility unknown
    assert unlinked.category == entries[1]["label"] and unlinked.pixels_per_view == ()


def test_flat_axes_are_the_three_axes_one_after_another():
    c, s = math.cos(0.4), math.sin(0.4)
    axes = [[c, s, 0], [-s, c, 0], [0, 0, 1]]  # columns of R: yaw 0.4
    nested = {"centroid": [1, 2, 0.5], "axes_lengths": [1, 0.5, 1], "normalized_axes": axes}
    flat = {**nested, "normalized_axes": [c, s, 0, -s, c, 0, 0, 0, 1]}
    box, same = place_box(nested).box, place_box(flat).box
    assert box.yaw == pytest.approx(0.4) and same == box


def test_psfm_qa_takes_box_files_with_ground_truth_facts_only(tiny_world_shards, box_folder, tmp_path):
    overrides = [f"data={tiny_world_shards}", f"out={tmp_path / 'qa'}", "progress=false", "images=false"]
    assert qa_command.run(compose_command("qa", [*overrides, f"boxes={box_folder}"]))["scenes"] == 3
    with pytest.raises(ValueError, match="needs facts=gt"):
        qa_command.run(compose_command("qa", [*overrides, f"boxes={box_folder}", "facts=lifted", "overwrite=true"]))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        qa_command.run(compose_command("qa", [*overrides, f"boxes={tmp_path / 'none'}", "overwrite=true"]))


def test_without_masks_an_object_is_seen_where_its_centre_projects_into_the_image():
    """Box files without instance ids carry no masks: visibility falls back to the camera frustum."""
    from psfm.qa.context import build_context
    from psfm.qa.facts import CameraFact, ObjectFact, SceneFacts
    from psfm.worlds.scene import OrientedBox

    # OpenCV camera at the origin looking along +y (x right, z up in the world: image y = -world z)
    cam_to_world = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
    intrinsics = np.array([[50.0, 0, 32], [0, 50, 32], [0, 0, 1]])
    camera = CameraFact(intrinsics, cam_to_world, 64, 64)

    def obj(instance_id: int, color: str, center: tuple[float, float, float]) -> ObjectFact:
        return ObjectFact(-instance_id, "crate", color, OrientedBox(center, (0.3, 0.3, 0.3), 0.0))

    ahead, behind, aside = obj(1, "red", (0.2, 3.0, 0.1)), obj(2, "blue", (0.0, -2.0, 0.0)), obj(3, "green", (5, 1, 0))
    facts = SceneFacts("s", (ahead, behind, aside), (camera,), None, "gt", "gt")
    context = build_context(facts, GenerationConfig(), SkipLog())
    assert set(context.named) == {-1, -2, -3}  # all nameable; only one in view
    assert context.visible[0] == [-1]


@pytest.mark.parametrize("landscape", [True, False])
def test_without_masks_visibility_bounds_u_by_the_width_and_v_by_the_height(landscape):
    """A non-square camera: a centre beyond the short side but within the long one is seen only along the long axis.

    The test above uses a square image, where bounding u by the height (or v by the width) changes nothing.
    """
    from psfm.qa.context import build_context
    from psfm.qa.facts import CameraFact, ObjectFact, SceneFacts
    from psfm.worlds.scene import OrientedBox

    height, width = (40, 80) if landscape else (80, 40)
    cam_to_world = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])  # looks along +y
    camera = CameraFact(np.array([[50.0, 0, 0], [0, 50, 0], [0, 0, 1]]), cam_to_world, height, width)  # (0, 0) ahead

    def at_pixel(instance_id: int, color: str, u: float, v: float) -> ObjectFact:
        """An object 2 m ahead whose centre projects to pixel (u, v): world x = u / 50 * 2, world z = -v / 50 * 2."""
        return ObjectFact(-instance_id, "crate", color, OrientedBox((u / 25, 2.0, -v / 25), (0.1, 0.1, 0.1), 0.0))

    long_side = max(height, width) - 10  # inside the long side, outside the short one
    along_width = at_pixel(1, "red", long_side, 5)  # seen in a landscape image only
    along_height = at_pixel(2, "blue", 5, long_side)  # seen in a portrait image only
    corner = at_pixel(3, "green", width - 0.5, height - 0.5)  # just inside either way
    facts = SceneFacts("s", (along_width, along_height, corner), (camera,), None, "gt", "gt")

    context = build_context(facts, GenerationConfig(), SkipLog())

    assert sorted(context.visible[0]) == ([-3, -1] if landscape else [-3, -2])
