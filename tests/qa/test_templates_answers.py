"""Every template's answer against an independent computation on world scenes.

The expected answers below are computed from the world's own ``Scene`` (not the QA facts), with
different mathematics from the package (complex numbers for bearings and turns, quaternions for
rotation angles, vertex/edge enumeration for box distances, a fresh render for depths, raw mask
counts for appearance order), so a bug in the QA code path cannot hide behind itself.
"""

from __future__ import annotations

import cmath
import math
from collections import Counter

import numpy as np
import pytest

from psfm.qa.answering import answer_spec
from psfm.qa.config import GenerationConfig
from psfm.qa.context import build_context
from psfm.qa.facts import SceneFacts
from psfm.qa.generate import generate_questions
from psfm.qa.question import LETTERS, spec_from_json
from psfm.qa.reasons import SkipLog
from psfm.qa.render_numbers import with_unit
from psfm.qa.templates import TEMPLATES
from psfm.worlds.render import render_view

CONFIG = GenerationConfig(per_task=8, per_scene=10_000)
DIRECTIONS = ("front", "front-left", "left", "back-left", "back", "back-right", "right", "front-right")


def name(obj, scene) -> str:
    """VSI-Bench's rule: the category alone when it is the scene's only one, else colour and category."""
    alone = sum(other.category == obj.category for other in scene.objects) == 1
    return f"the {obj.category}" if alone else f"the {obj.color_name} {obj.category}"


def horizontal(vector) -> complex:
    return complex(float(vector[0]), float(vector[1]))


def forward_of(pose: np.ndarray) -> complex:
    forward = horizontal(pose[:3, 2])
    return forward / abs(forward)


def relative(pose: np.ndarray, point) -> complex:
    """Point relative to the camera, rotated so the camera's horizontal forward is +real (left = +imag)."""
    return horizontal(np.asarray(point) - pose[:3, 3]) / forward_of(pose)


def turn_deg(z: complex) -> float:
    return math.degrees(cmath.phase(z))


def corners(box) -> np.ndarray:
    """The 8 corners [8, 3] of a world box."""
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    return (signs * np.asarray(box.size) / 2) @ rotation.T + np.asarray(box.center)


def point_to_box(point: np.ndarray, box) -> float:
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    offset = point - np.asarray(box.center)
    local = np.array([c * offset[0] + s * offset[1], -s * offset[0] + c * offset[1], offset[2]])
    outside = np.maximum(np.abs(local) - np.asarray(box.size) / 2, 0.0)
    return float(np.linalg.norm(outside))


def segment_distance(p1, q1, p2, q2) -> float:
    """Closest distance of two 3D segments (clamped closed form)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e, f = d1 @ d1, d2 @ d2, d2 @ r
    c, b = d1 @ r, d1 @ d2
    denominator = a * e - b * b
    s = float(np.clip((b * f - c * e) / denominator, 0, 1)) if denominator > 1e-12 else 0.0
    t = (b * s + f) / e
    if t < 0:
        t, s = 0.0, float(np.clip(-c / a, 0, 1))
    elif t > 1:
        t, s = 1.0, float(np.clip((b - c) / a, 0, 1))
    return float(np.linalg.norm(p1 + d1 * s - (p2 + d2 * t)))


def box_edges(box) -> list[tuple[np.ndarray, np.ndarray]]:
    points = corners(box)
    return [(points[i], points[j]) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]


def exact_distance(a, b) -> float:
    """Distance of two disjoint convex boxes: the best of vertex-to-box and edge-to-edge distances."""
    vertex = min(min(point_to_box(p, b) for p in corners(a)), min(point_to_box(p, a) for p in corners(b)))
    edge = min(segment_distance(p1, q1, p2, q2) for p1, q1 in box_edges(a) for p2, q2 in box_edges(b))
    return min(vertex, edge)


def expected_answer(question, scene, views, min_pixels: int):
    """The answer by the world's truth and independent math (a number or a label)."""
    spec = spec_from_json(question.spec)
    objects = {o.instance_id: o for o in scene.objects}
    a, b = (objects[i] for i in spec.objects[:2]) if len(spec.objects) >= 2 else (None, None)
    pose = np.asarray(scene.cameras[spec.views[0]].cam_to_world) if spec.views else None
    task = question.task
    if task == "left_right":
        return "left" if -relative(pose, a.box.center).imag < -relative(pose, b.box.center).imag else "right"
    if task == "front_behind":
        return "in front of" if relative(pose, a.box.center).real < relative(pose, b.box.center).real else "behind"
    if task == "above_below":
        if a.box.center[2] - a.box.size[2] / 2 >= b.box.center[2] + b.box.size[2] / 2 - 0.02:
            return "above"
        assert a.box.center[2] + a.box.size[2] / 2 <= b.box.center[2] - b.box.size[2] / 2 + 0.02
        return "below"
    if task == "wide_thin":
        return "wider" if max(a.box.size[:2]) > max(b.box.size[:2]) else "thinner"
    if task == "tall_short":
        return "taller" if a.box.size[2] > b.box.size[2] else "shorter"
    if task == "big_small":
        return "bigger" if np.prod(a.box.size) > np.prod(b.box.size) else "smaller"
    if task == "center_distance":
        return math.dist(a.box.center, b.box.center)
    if task == "horizontal_distance":
        return abs(horizontal(np.subtract(a.box.center, b.box.center)))
    if task == "vertical_distance":
        return abs(a.box.center[2] - b.box.center[2])
    if task == "object_width":
        return max(objects[spec.objects[0]].box.size[:2])
    if task == "object_height":
        return objects[spec.objects[0]].box.size[2]
    if task == "point_depth":
        depth = render_view(scene.room, scene.objects, scene.cameras[spec.views[0]]).depth
        return float(depth[int(spec.point[1] * depth.shape[0]), int(spec.point[0] * depth.shape[1])])
    if task == "depth_order":
        to_camera = np.linalg.inv(pose)
        za, zb = ((to_camera @ np.array([*o.box.center, 1.0]))[2] for o in (a, b))
        return "closer to" if za < zb else "farther from"
    if task == "camera_distance":
        return math.dist(objects[spec.objects[0]].box.center, pose[:3, 3])
    if task == "orientation":
        box = objects[spec.objects[0]].box
        yaw = box.yaw if box.size[0] >= box.size[1] else box.yaw + math.pi / 2
        along = abs(complex(math.cos(yaw), math.sin(yaw)) / forward_of(pose))
        cosine = abs((complex(math.cos(yaw), math.sin(yaw)) / forward_of(pose)).real) / along
        return "parallel" if cosine > math.cos(math.pi / 4) else "perpendicular"
    if task == "direction":
        turn = turn_deg(horizontal(np.subtract(b.box.center, a.box.center)) / forward_of(pose))
        return DIRECTIONS[round(turn / 45) % 8]
    if task == "stack_height":
        return b.box.center[2] + b.box.size[2] / 2 + a.box.size[2]
    if task == "object_counting":
        return sum(o.category == spec.category for o in scene.objects)
    if task == "object_size_estimation":
        return 100 * max(objects[spec.objects[0]].box.size)
    if task == "room_size_estimation":
        return scene.room.size[0] * scene.room.size[1]
    if task == "object_abs_distance":
        return exact_distance(a.box, b.box)
    if task == "object_rel_distance":
        target = objects[spec.objects[0]]
        options = [objects[i] for i in spec.objects[1:]]
        return name(min(options, key=lambda o: exact_distance(target.box, o.box)), scene)
    if task.startswith("object_rel_direction"):
        c = objects[spec.objects[2]]
        turn = turn_deg(
            horizontal(np.subtract(c.box.center, a.box.center)) / horizontal(np.subtract(b.box.center, a.box.center))
        )
        side = "left" if turn > 0 else "right"
        if task.endswith("medium"):  # VSI-Bench's levels: easy left / right, medium also back
            return "back" if abs(turn) >= 135 else side
        if task.endswith("easy"):
            return side
        return f"{'front' if abs(turn) < 90 else 'back'}-{side}"
    if task == "route_planning":
        stops = [horizontal(objects[i].box.center) for i in spec.objects]
        legs = [end - start for start, end in zip(stops, stops[1:], strict=False)]
        turns = (turn_deg(leaving / arriving) for arriving, leaving in zip(legs, legs[1:], strict=False))
        words = ("Back" if abs(turn) >= 135 else "Left" if turn > 0 else "Right" for turn in turns)
        return ", ".join(f"Turn {word}" for word in words)
    if task == "obj_appearance_order":
        first = {
            i: next(v for v, view in enumerate(views) if np.count_nonzero(view.instance == i) >= min_pixels)
            for i in spec.objects
        }
        return ", ".join(name(objects[i], scene) for i in sorted(spec.objects, key=first.get))
    first_pose, second_pose = (np.asarray(scene.cameras[v].cam_to_world) for v in spec.views)
    if task == "camera_rotation":
        relative_rotation = first_pose[:3, :3].T @ second_pose[:3, :3]
        w = math.sqrt(max(0.0, 1.0 + np.trace(relative_rotation))) / 2
        return math.degrees(2 * math.acos(min(1.0, w)))
    if task == "camera_turn":
        return "left" if turn_deg(forward_of(second_pose) / forward_of(first_pose)) > 0 else "right"
    if task == "camera_translation":
        return math.dist(first_pose[:3, 3], second_pose[:3, 3])
    if task == "camera_motion":
        turn = turn_deg(horizontal(second_pose[:3, 3] - first_pose[:3, 3]) / forward_of(first_pose))
        return ("forward", "left", "backward", "right")[round(turn / 90) % 4]
    raise AssertionError(f"no independent answer for task {task}")


def claimed(question):
    """What the question says is true: its exact number, or the label its answer stands for."""
    if question.format == "multiple_choice":
        index = LETTERS.index(question.answer)
        if question.unit is not None:
            assert question.choices[index] == with_unit(question.answer_value, question.unit)
        return question.answer_value, question.choices[index]
    return question.answer_value, None


@pytest.fixture(scope="module")
def generated(world_scenes):
    out = []
    for scene, views, facts in world_scenes:
        context = build_context(facts, CONFIG, SkipLog())
        out.extend((question, scene, views, context) for question in generate_questions(facts, CONFIG))
    return out


def test_every_template_is_exercised(generated):
    counts = Counter(question.task for question, *_ in generated)
    missing = [task for task in TEMPLATES if counts[task] == 0]
    assert not missing, f"no questions generated for {missing}; counts {counts}"


def test_every_answer_matches_an_independent_computation(generated):
    checked = Counter()
    for question, scene, views, context in generated:
        expected = expected_answer(question, scene, views, context.min_pixels)
        template = TEMPLATES[question.task]
        where = f"{question.id} {question.task} {question.format}: {question.question!r}"
        if question.format == "yes_no":
            spec = spec_from_json(question.spec)
            claim_is_truth = question.question == f"{template.claim(spec, context, expected)} Answer yes or no."
            assert (question.answer == "yes") == claim_is_truth, where
        elif template.unit is not None:
            value, _ = claimed(question)
            tolerance = 1e-5 if question.task == "object_abs_distance" else 1e-9  # an iterative solver vs closed form
            assert value == pytest.approx(expected, rel=1e-6, abs=tolerance), where
        else:
            value, shown = claimed(question)
            assert value == expected, where
            if shown is not None:
                assert shown == template.label_text(spec_from_json(question.spec), context, expected), where
        checked[question.task] += 1
    assert sum(checked.values()) >= 200


def test_route_plan_masks_every_turn_and_offers_other_turn_sequences(generated):
    routes = [(question, context) for question, _, _, context in generated if question.task == "route_planning"]
    assert routes
    for question, context in routes:
        spec = spec_from_json(question.spec)
        turns = len(spec.objects) - 2
        masked = [f"{2 * k + 2}. [please fill in] {2 * k + 3}. Go forward until" for k in range(turns)]
        assert turns >= 1 and all(step in question.question for step in masked)
        assert question.question.count("[please fill in]") == turns + 1  # the masks and the note naming them
        assert all(f"Go forward until {context.named[i]}" in question.question for i in spec.objects[1:])
        assert len(question.choices) == min(3**turns, 4) == len(set(question.choices))
        assert all(choice.count("Turn ") == turns for choice in question.choices)
        assert question.choices.count(question.answer_value) == 1


@pytest.mark.parametrize("size", [(20, 50), (50, 20)])
def test_point_depth_reads_x_along_the_width_and_y_along_the_height(size):
    """Questions put (0, 0) at the top-left and (1, 1) at the bottom-right: x scales with W, y with H.

    World renders are square, where swapping the two cannot show; here every pixel holds its own depth.
    """
    height, width = size
    rows, cols = np.mgrid[:height, :width]
    depth = 4.0 + 0.01 * rows + 0.0001 * cols  # distinct per pixel, flat enough (< 3 % over 3 x 3) to be asked
    facts = SceneFacts("s", (), (), None, "gt", "gt", depths=(depth,))
    context = build_context(facts, GenerationConfig(), SkipLog())
    template, asked = TEMPLATES["point_depth"], 0
    for spec in template.specs(context):
        x, y = spec.point
        assert answer_spec(template, spec, context).value == depth[int(y * height), int(x * width)], spec.point
        asked += 1
    assert asked == 25
