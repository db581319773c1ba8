"""Answer symmetries: swapping A and B flips every pairwise predicate; mirroring the world in x swaps
left and right (and nothing else that is not lateral)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from psfm.qa.answering import answer_spec
from psfm.qa.config import GenerationConfig
from psfm.qa.context import build_context
from psfm.qa.facts import CameraFact, SceneFacts
from psfm.qa.question import Answer, Spec
from psfm.qa.reasons import SkipLog
from psfm.qa.templates import TEMPLATES
from psfm.worlds.scene import OrientedBox

CONFIG = GenerationConfig()
PAIR_TASKS = ("left_right", "front_behind", "above_below", "wide_thin", "tall_short", "big_small", "depth_order")
MIRROR_SWAPS = {"left": "right", "right": "left", "front-left": "front-right", "front-right": "front-left",
                "back-left": "back-right", "back-right": "back-left"}  # fmt: skip
MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])


def mirrored(facts: SceneFacts) -> SceneFacts:
    """The scene reflected in x = 0; cameras' x axes are flipped too, so their frames stay right-handed."""
    objects = tuple(
        replace(o, box=OrientedBox((-o.box.center[0], *o.box.center[1:]), o.box.size, np.pi - o.box.yaw))
        for o in facts.objects
    )
    cameras = tuple(
        CameraFact(c.intrinsics, MIRROR @ c.cam_to_world @ MIRROR, c.height, c.width) for c in facts.cameras
    )
    return replace(facts, objects=objects, cameras=cameras, floor_polygon=facts.floor_polygon * [-1, 1])


def answered(task: str, context) -> list[tuple[Spec, str]]:
    template = TEMPLATES[task]
    pairs = []
    for spec in template.specs(context):
        result = answer_spec(template, spec, context)
        if isinstance(result, Answer):
            pairs.append((spec, result.value))
    return pairs


@pytest.mark.parametrize("task", PAIR_TASKS)
def test_swapping_a_and_b_flips_the_answer(task, world_scenes):
    template, flips = TEMPLATES[task], 0
    for _, _, facts in world_scenes:
        context = build_context(facts, CONFIG, SkipLog())
        for spec, value in answered(task, context):
            swapped = answer_spec(template, replace(spec, objects=spec.objects[::-1]), context)
            assert isinstance(swapped, Answer), f"{task}: {spec} answered one way but not swapped"
            assert {value, swapped.value} == set(template.labels), f"{task}: {spec} gave {value} both ways"
            flips += 1
    assert flips >= 5


@pytest.mark.parametrize(
    ("task", "lateral"),
    [
        ("left_right", True),
        ("front_behind", False),
        ("above_below", False),
        ("direction", True),
        ("object_rel_direction_easy", True),
        ("object_rel_direction_medium", True),
        ("object_rel_direction_hard", True),
        ("camera_turn", True),
        ("camera_motion", True),
        ("depth_order", False),
    ],
)
def test_mirroring_x_swaps_left_and_right(task, lateral, world_scenes):
    template, checked = TEMPLATES[task], 0
    for _, _, facts in world_scenes:
        context = build_context(facts, CONFIG, SkipLog())
        mirror_context = build_context(mirrored(facts), CONFIG, SkipLog())
        for spec, value in answered(task, context):
            reflected = answer_spec(template, spec, mirror_context)
            assert isinstance(reflected, Answer), f"{task}: {spec} unanswerable after mirroring ({reflected})"
            expected = MIRROR_SWAPS.get(value, value) if lateral else value
            assert reflected.value == expected, f"{task}: {spec} {value} -> {reflected.value}"
            checked += 1
    assert checked >= 5


def test_mirroring_x_swaps_every_turn_of_a_route(world_scenes):
    template, checked = TEMPLATES["route_planning"], 0
    swap = {"Turn Left": "Turn Right", "Turn Right": "Turn Left", "Turn Back": "Turn Back"}
    for _, _, facts in world_scenes:
        context = build_context(facts, CONFIG, SkipLog())
        mirror_context = build_context(mirrored(facts), CONFIG, SkipLog())
        for spec, value in answered("route_planning", context):
            reflected = answer_spec(template, spec, mirror_context)
            assert isinstance(reflected, Answer), f"route_planning: {spec} unanswerable after mirroring ({reflected})"
            assert reflected.value == ", ".join(swap[turn] for turn in value.split(", ")), f"{spec}: {value}"
            checked += 1
    assert checked >= 5
