"""VSI-Bench's measurement tasks: object count, object size, room size and absolute distance.

These are multi-view questions about the whole scan, answered with a number, as in VSI-Bench:
counts are integers, sizes are the longest box side in centimetres, room size is the floor area in
square metres, and distances are between the closest points of the two boxes in metres.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from psfm.qa.boxes import box_distance
from psfm.qa.context import SceneContext
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import NUMBER_FORMATS, Template, unordered_pairs


class _SceneNumber(Template):
    family = "vsibench"
    formats = NUMBER_FORMATS
    views_needed = "multi"


class ObjectCount(_SceneNumber):
    """How many objects of a category the scan shows; every instance must be seen, or the count is moot.

    Counting needs no unique names, so duplicate-label objects count too.
    """

    task = "object_count"
    level = "L1"
    unit = "count"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        for category in sorted({o.category for o in context.facts.objects}):
            yield Spec(self.task, category=category)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        members = [o for o in context.facts.objects if o.category == spec.category]
        if not members:
            return Skip("referent_missing")
        if any(o.pixels_per_view and max(o.pixels_per_view) < context.min_pixels for o in members):
            return Skip("ambiguous:unseen_instance")
        return Answer(float(len(members)))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        return f"How many {spec.category}(s) are in this room?"


class ObjectSize(_SceneNumber):
    task = "object_size"
    level = "L1"
    unit = "cm"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        for instance_id in sorted(context.named):
            yield Spec(self.task, (instance_id,))

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        return Answer(100.0 * float(max(context.obj(spec.objects[0]).box.size)))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        name = context.named[spec.objects[0]]
        return f"What is the length of the longest dimension (length, width, or height) of {name}, in centimeters?"


class RoomSize(_SceneNumber):
    task = "room_size"
    level = "L1"
    unit = "m2"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        yield Spec(self.task)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        area = context.facts.floor_area
        if area is None or not np.isfinite(area) or area <= 0:
            return Skip("scene_without_floor")
        return Answer(float(area))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        return "What is the size of this room (its floor area), in square meters?"


class AbsoluteDistance(_SceneNumber):
    task = "absolute_distance"
    level = "L2"
    unit = "m"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        for a, b in unordered_pairs(context):
            yield Spec(self.task, (a, b))

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        a, b = (context.obj(i).box for i in spec.objects)
        distance = box_distance(a, b)
        if distance < context.margins.min_length:
            return Skip("answer_too_small")
        return Answer(distance)

    def stem(self, spec: Spec, context: SceneContext) -> str:
        a, b = (context.named[i] for i in spec.objects)
        return f"Measuring from the closest point of each object, what is the distance between {a} and {b}, in meters?"
