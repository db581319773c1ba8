"""Bad input is skipped and counted with a reason, never a crash and never a wrong answer."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from psfm.qa.answering import answer_spec
from psfm.qa.config import GenerationConfig
from psfm.qa.context import build_context
from psfm.qa.generate import generate_questions
from psfm.qa.question import Skip
from psfm.qa.reasons import SkipLog
from psfm.qa.sources import facts_from_meta
from psfm.qa.templates import TEMPLATES

from .conftest import meta_of

CONFIG = GenerationConfig(per_task=4, per_scene=1000)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda box: box.update(axes_lengths=[0.0, 0.3, 0.3]), "box_degenerate"),
        (lambda box: box.update(centroid=[float("nan"), 0.0, 0.0]), "box_not_finite"),
        (lambda box: box.update(centroid="here"), "box_not_finite"),
        (lambda box: box.update(normalized_axes=[[2, 0, 0], [0, 1, 0], [0, 0, 1]]), "box_axes_not_orthonormal"),
    ],
)
def test_unusable_boxes_are_kept_unplaced_with_their_reason(damage, reason, world_scenes):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    damage(meta["objects"][0]["box"])
    skips = SkipLog()
    facts = facts_from_meta(meta, skips, [v.instance for v in views], [v.depth for v in views])
    assert skips.counts[reason] == 1 and facts.notes[f"objects/unplaced/{reason}"] == 1
    assert scene.objects[0].instance_id not in {o.instance_id for o in facts.objects}
    assert [(o.instance_id, o.reason) for o in facts.unplaced] == [(scene.objects[0].instance_id, reason)]
    assert len(facts.objects) == len(scene.objects) - 1
    generate_questions(facts, CONFIG, skips)  # and generation still runs


def test_a_tilted_box_is_levelled_not_dropped(world_scenes):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    meta["objects"][0]["box"]["normalized_axes"] = [[1, 0, 0], [0, 0.7071068, 0.7071068], [0, -0.7071068, 0.7071068]]
    facts = facts_from_meta(meta, SkipLog(), [v.instance for v in views])
    assert len(facts.objects) == len(scene.objects) and not facts.unplaced
    assert facts.notes["objects/placed/levelled"] == 1 and facts.notes["max_tilt_deg"] == pytest.approx(45.0)


def test_objects_without_category_are_dropped_and_exact_duplicates_merged(world_scenes):
    scene, _, _ = world_scenes[0]
    meta = meta_of(scene)
    meta["objects"][0]["category"] = ""
    meta["objects"].append(copy.deepcopy(meta["objects"][1]))
    skips = SkipLog()
    facts = facts_from_meta(meta, skips)
    assert skips.counts["object_without_category"] == 1 and skips.counts["duplicate_box_merged"] == 1
    assert len(facts.objects) == len(scene.objects) - 1 and facts.notes["objects/merged_duplicates"] == 1


def test_a_repeated_instance_id_on_another_box_keeps_the_object_unlinked(world_scenes):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    twin = copy.deepcopy(meta["objects"][1])
    twin["box"]["centroid"] = [c + 0.5 for c in twin["box"]["centroid"]]
    meta["objects"].append(twin)
    facts = facts_from_meta(meta, SkipLog(), [v.instance for v in views])
    assert len(facts.objects) == len(scene.objects) + 1 and facts.notes["objects/unlinked_instance_id"] == 1
    assert facts.objects[-1].instance_id < 0 and facts.objects[-1].pixels_per_view == ()


def test_duplicate_labels_are_never_named(world_scenes):
    scene, views, facts = world_scenes[1]
    twin = replace(facts.objects[1], color=facts.objects[0].color, category=facts.objects[0].category)
    doubled = replace(facts, objects=(facts.objects[0], twin, *facts.objects[2:]))
    skips = SkipLog()
    context = build_context(doubled, CONFIG, skips)
    assert skips.counts["duplicate_label"] == 2
    assert facts.objects[0].instance_id not in context.named and twin.instance_id not in context.named
    for question in generate_questions(doubled, CONFIG):
        named = set(question.spec["objects"])
        assert not named & {facts.objects[0].instance_id, twin.instance_id}, question.question


def test_a_scene_without_a_room_estimates_it_from_its_boxes_and_asks_no_room_size(world_scenes):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    meta["room"] = None
    skips = SkipLog()
    facts = facts_from_meta(meta, skips, [v.instance for v in views])
    assert facts.room_source == "estimated_from_boxes" and facts.floor_area > 0
    questions = generate_questions(facts, CONFIG, skips)
    assert questions and not any(q.task == "room_size_estimation" for q in questions)
    assert skips.counts["room_size_estimation/room_estimated_from_boxes"] == 1
    allowed = generate_questions(facts, replace(CONFIG, room_size_from_boxes=True))
    assert any(q.task == "room_size_estimation" for q in allowed)


def test_no_metric_scale_means_no_metric_numbers(world_scenes):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    meta["metric_scale"] = "none"
    skips = SkipLog()
    questions = generate_questions(facts_from_meta(meta, skips, [v.instance for v in views]), CONFIG, skips)
    assert questions and all(q.unit not in ("m", "cm", "m2") for q in questions)
    assert any(reason.endswith("/no_metric_scale") for reason in skips.counts)


def test_unposed_scenes_get_only_pose_free_questions(world_scenes):
    scene, views, _ = world_scenes[0]
    meta = meta_of(scene)
    meta["pose_source"] = "none"
    skips = SkipLog()
    questions = generate_questions(facts_from_meta(meta, skips, [v.instance for v in views]), CONFIG, skips)
    assert questions and not any(q.family == "camera" or q.task in ("left_right", "depth_order") for q in questions)


def test_a_scene_with_no_objects_still_yields_camera_questions(world_scenes):
    _, _, facts = world_scenes[0]
    questions = generate_questions(replace(facts, objects=()), CONFIG)
    assert questions and {q.family for q in questions} <= {"camera", "hispatial", "vsibench"}
    assert all(not q.spec["objects"] for q in questions)


@pytest.mark.parametrize("task", ["left_right", "depth_order"])
def test_a_view_framed_question_needs_a_camera_for_its_last_view(task, world_scenes):
    """With cameras for views 0..k a question framed by view k is answered; with one camera fewer it is skipped
    as ``no_poses`` (an off-by-one here would index past the cameras and crash)."""
    _, _, facts = world_scenes[0]
    context = build_context(facts, CONFIG, SkipLog())
    template = TEMPLATES[task]
    spec = next(spec for spec in template.specs(context) if spec.views)
    last = max(spec.views)

    enough = replace(context, facts=replace(facts, cameras=facts.cameras[: last + 1]))
    assert answer_spec(template, spec, enough) != Skip("no_poses")
    short = replace(context, facts=replace(facts, cameras=facts.cameras[:last]))
    assert answer_spec(template, spec, short) == Skip("no_poses")
