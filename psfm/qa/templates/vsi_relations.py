"""VSI-Bench's relational tasks: relative distance, relative direction (3 difficulties), appearance order.

Relative direction is perspective taking: "standing by A, facing B, where is C?" in the horizontal
plane. The turn from B to C is measured counter-clockwise (positive = left). The three levels are
VSI-Bench's: easy asks left or right, medium left, right or back (back when the turn is at least
135°), hard the quadrant (front-left ... back-right). Angles within ``margins.angle_deg`` of a label
boundary are skipped. Task names are VSI-Bench's ``question_type`` values.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Iterator

import numpy as np

from psfm.qa.boxes import box_distance
from psfm.qa.context import SceneContext
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import ALL_FORMATS, Template, angle_near, signed_turn_deg

OPTIONS = 4
BACK_TURN_DEG = 135.0  # VSI-Bench: an object is "back" when facing it takes a turn of at least this
LEFT_RIGHT_BACK_BOUNDARIES = (0.0, BACK_TURN_DEG, -BACK_TURN_DEG)


def left_right_or_back(turn_deg: float) -> str:
    """VSI-Bench's easy direction of a counter-clockwise turn: ``back`` from 135°, else ``left`` / ``right``."""
    if abs(turn_deg) >= BACK_TURN_DEG:
        return "back"
    return "left" if turn_deg > 0 else "right"


class _SceneChoice(Template):
    family = "vsibench"
    views_needed = "multi"

    def label_text(self, spec: Spec, context: SceneContext, label: str) -> str:
        return label


class RelativeDistance(_SceneChoice):
    """Which option object is closest (closest box points) to the target? Near-ties are skipped."""

    task = "object_rel_distance"
    level = "L2"
    formats = ("multiple_choice",)

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        ids = sorted(context.named)
        for target in ids:
            others = [i for i in ids if i != target]
            if len(others) < 3:
                continue
            for options in itertools.combinations(others, min(OPTIONS, len(others))):
                yield Spec(self.task, (target, *options))

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        target = context.obj(spec.objects[0]).box
        options = spec.objects[1:]
        distances = np.array([box_distance(target, context.obj(i).box) for i in options])
        order = np.argsort(distances)
        area = context.facts.floor_area
        margins = context.margins
        gap = (
            margins.option_gap_small_room
            if area is not None and area <= margins.small_room_area
            else margins.option_gap
        )
        if distances[order[1]] - distances[order[0]] < gap:
            return Skip("ambiguous:options_too_close")
        return Answer(context.named[options[order[0]]], tuple(context.named[i] for i in options))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        target = context.named[spec.objects[0]]
        return f"Measuring from the closest point of each object, which of these objects is the closest to {target}?"


class _RelativeDirection(_SceneChoice):
    level = "L3"
    formats = ALL_FORMATS
    labels: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()
    question_hint = ""
    note = ""

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        yield from (Spec(self.task, triple) for triple in itertools.permutations(sorted(context.named), 3))

    def classify(self, turn_deg: float) -> str:
        raise NotImplementedError

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        standing, facing, query = (context.obj(i).center[:2] for i in spec.objects)
        forward, target = facing - standing, query - standing
        if min(np.linalg.norm(forward), np.linalg.norm(target)) < context.margins.min_separation:
            return Skip("objects_too_close")
        turn = signed_turn_deg(forward, target)
        if angle_near(turn, self.boundaries, context.margins.angle_deg):
            return Skip("ambiguous:angle_near_boundary")
        return Answer(self.classify(turn), self.labels)

    def _setup(self, spec: Spec, context: SceneContext) -> str:
        a, b, _ = (context.named[i] for i in spec.objects)
        return f"If I am standing by {a} and facing {b}"

    def stem(self, spec: Spec, context: SceneContext) -> str:
        c = context.named[spec.objects[2]]
        return f"{self._setup(spec, context)}, is {c} to my {self.question_hint}?{self.note}"

    def claim(self, spec: Spec, context: SceneContext, label: str) -> str:
        c = context.named[spec.objects[2]]
        where = "behind me" if label == "back" else f"to my {label}"
        return f"{self._setup(spec, context)}, is {c} {where}?"


class RelativeDirectionMedium(_RelativeDirection):
    task = "object_rel_direction_medium"
    labels = ("left", "right", "back")
    boundaries = LEFT_RIGHT_BACK_BOUNDARIES
    question_hint = "left, right, or back"
    note = " An object is to my back if I would have to turn at least 135 degrees in order to face it."

    def classify(self, turn_deg: float) -> str:
        return left_right_or_back(turn_deg)


class RelativeDirectionEasy(_RelativeDirection):
    """Left or right of the facing object, in VSI-Bench's words; the answer is the sign of the turn."""

    task = "object_rel_direction_easy"
    labels = ("left", "right")
    boundaries = (0.0, 180.0)

    def classify(self, turn_deg: float) -> str:
        return "left" if turn_deg > 0 else "right"

    def stem(self, spec: Spec, context: SceneContext) -> str:
        b, c = (context.named[i] for i in spec.objects[1:])
        return f"{self._setup(spec, context)}, is {c} to the left or the right of {b}?"

    def claim(self, spec: Spec, context: SceneContext, label: str) -> str:
        b, c = (context.named[i] for i in spec.objects[1:])
        return f"{self._setup(spec, context)}, is {c} to the {label} of {b}?"


class RelativeDirectionHard(_RelativeDirection):
    task = "object_rel_direction_hard"
    labels = ("front-left", "front-right", "back-left", "back-right")
    boundaries = (0.0, 90.0, -90.0, 180.0)
    question_hint = "front-left, front-right, back-left, or back-right"
    note = (
        " The directions refer to the quadrants of a Cartesian plane (if I am standing at the origin and facing"
        " along the positive y-axis)."
    )

    def classify(self, turn_deg: float) -> str:
        side = "left" if turn_deg > 0 else "right"
        return f"{'front' if abs(turn_deg) < 90.0 else 'back'}-{side}"


class AppearanceOrder(_SceneChoice):
    """In which order do four objects first appear in the views (capture order)? Ties are skipped.

    The wrong options are other orderings drawn by a generator seeded from the spec itself, so the
    option set is a pure function of the spec (re-answering on other facts sees the same options).
    """

    task = "obj_appearance_order"
    level = "L2"
    formats = ("multiple_choice",)

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        if not any(context.obj(i).pixels_per_view for i in context.named):
            return  # no masks: no first appearances (summary.json counts such scenes)
        ids = sorted(context.named)
        yield from (Spec(self.task, group) for group in itertools.combinations(ids, OPTIONS))

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        if not all(context.obj(i).pixels_per_view for i in spec.objects):
            return Skip("visibility_unknown")
        firsts = [context.first_view(i) for i in spec.objects]
        if None in firsts:
            return Skip("object_never_seen")
        if len(set(firsts)) < len(firsts):
            return Skip("ambiguous:same_first_view")
        order = [spec.objects[k] for k in np.argsort(firsts, kind="stable")]
        rng = random.Random(zlib.crc32(repr(spec).encode()))
        orderings = {tuple(order)}
        while len(orderings) < OPTIONS:
            orderings.add(tuple(rng.sample(list(spec.objects), len(spec.objects))))
        labels = [", ".join(context.named[i] for i in ordering) for ordering in sorted(orderings)]
        return Answer(", ".join(context.named[i] for i in order), tuple(labels))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        names = ", ".join(context.named[i] for i in sorted(spec.objects))
        return f"In which order do these objects first appear in the images: {names}?"
