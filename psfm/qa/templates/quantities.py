"""SpatialVLM's quantities: distances between object centres (direct, horizontal, vertical), widths, heights.

Answers are metres. Values under ``margins.min_length`` are skipped: relative metrics (MRA, ±25 %)
divide by the truth, and a 3 cm "distance" is annotation noise, not geometry.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from psfm.qa.boxes import horizontal_sides
from psfm.qa.context import SceneContext
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import NUMBER_FORMATS, Template, best_view_specs, measured, unordered_pairs


class _Quantity(Template):
    family = "spatialvlm"
    unit = "m"
    formats = NUMBER_FORMATS

    def measure(self, spec: Spec, context: SceneContext) -> float:
        raise NotImplementedError

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        return measured(self.measure(spec, context), context.margins.min_length)


class _PairQuantity(_Quantity):
    level = "L2"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return best_view_specs(self.task, context, unordered_pairs(context))

    def offset(self, spec: Spec, context: SceneContext) -> np.ndarray:
        a, b = (context.obj(i).center for i in spec.objects)
        return b - a


class CenterDistance(_PairQuantity):
    task = "center_distance"
    question_text = "How far apart are the centers of {a} and {b}?"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(np.linalg.norm(self.offset(spec, context)))


class HorizontalDistance(_PairQuantity):
    task = "horizontal_distance"
    question_text = "What is the horizontal distance between the centers of {a} and {b}?"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(np.linalg.norm(self.offset(spec, context)[:2]))


class VerticalDistance(_PairQuantity):
    task = "vertical_distance"
    question_text = "What is the vertical distance between the centers of {a} and {b}?"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(abs(self.offset(spec, context)[2]))


class _ObjectQuantity(_Quantity):
    level = "L1"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return best_view_specs(self.task, context, ((instance_id,) for instance_id in sorted(context.named)))


class ObjectWidth(_ObjectQuantity):
    """Width = the longer horizontal side."""

    task = "object_width"
    question_text = "How wide is {a}?"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return horizontal_sides(context.obj(spec.objects[0]).box)[0]


class ObjectHeight(_ObjectQuantity):
    task = "object_height"
    question_text = "How tall is {a}?"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(context.obj(spec.objects[0]).box.size[2])
