"""VSI-Bench's measurement tasks: object count, object size, room size and absolute distance.

Task names are VSI-Bench's ``question_type`` values, so its scorer reads psfm rows (``psfm.qa.vsibench``).

These are multi-view questions about the whole scan, answered with a number, as in VSI-Bench:
counts are integers, sizes are the longest box side in centimetres, room size is the floor area in
square metres, and distances are between the closest points of the two boxes in metres.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from psfm.qa.boxes import box_distance
from psfm.qa.context import SceneContext
from psfm.qa.floors import ESTIMATED_FROM_BOXES
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import NUMBER_FORMATS, Template, measured, object_specs, unordered_pairs


class _SceneNumber(Template):
    family = "vsibench"
    formats = NUMBER_FORMATS
    views_needed = "multi"


class ObjectCount(_SceneNumber):
    """How many objects of a category the scan shows; every instance must be seen, or the count is moot.

    Counting needs no unique names and no box, so duplicate-label objects and objects whose box could
    not be placed count too: every annotated instance.
    """

    task = "object_counting"
    level = "L1"
    unit = "count"
    question_text = "How many {category}(s) are in this room?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        for category in sorted({o.category for o in (*context.facts.objects, *context.facts.unplaced)}):
            yield Spec(self.task, category=category)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        members = context.facts.instances(str(spec.category))
        if not members:
            return Skip("referent_missing")
        if any(o.pixels_per_view and max(o.pixels_per_view) < context.min_pixels for o in members):
            return Skip("ambiguous:unseen_instance")
        return Answer(float(len(members)))

    def phrase_fields(self, spec: Spec, context: SceneContext) -> dict[str, str]:
        return {"category": str(spec.category)}


class ObjectSize(_SceneNumber):
    task = "object_size_estimation"
    level = "L1"
    unit = "cm"
    question_text = "What is the length of the longest dimension (length, width, or height) of {a}, in centimeters?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return object_specs(self.task, context)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        return Answer(100.0 * float(max(context.obj(spec.objects[0]).box.size)))


class RoomSize(_SceneNumber):
    task = "room_size_estimation"
    level = "L1"
    unit = "m2"
    question_text = "What is the size of this room (its floor area), in square meters?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        yield Spec(self.task)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        area = context.facts.floor_area
        if area is None or not np.isfinite(area) or area <= 0:
            return Skip("scene_without_floor")
        if context.facts.room_source == ESTIMATED_FROM_BOXES and not context.room_size_from_boxes:
            return Skip("room_estimated_from_boxes")
        return Answer(float(area))


class AbsoluteDistance(_SceneNumber):
    task = "object_abs_distance"
    level = "L2"
    unit = "m"
    question_text = (
        "Measuring from the closest point of each object, what is the distance between {a} and {b}, in meters?"
    )

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return (Spec(self.task, pair) for pair in unordered_pairs(context))

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        a, b = (context.obj(i).box for i in spec.objects)
        return measured(box_distance(a, b), context.margins.min_length)
