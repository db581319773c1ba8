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
from psfm.qa.templates.base import NUMBER_FORMATS, Template, unordered_pairs
from psfm.qa.templates.views import best_view


class _Quantity(Template):
    family = "spatialvlm"
    unit = "m"
    formats = NUMBER_FORMATS

    def measure(self, spec: Spec, context: SceneContext) -> float:
        raise NotImplementedError

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        value = self.measure(spec, context)
        if not np.isfinite(value) or value < context.margins.min_length:
            return Skip("answer_too_small")
        return Answer(float(value))


class _PairQuantity(_Quantity):
    level = "L2"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        for a, b in unordered_pairs(context):
            view = best_view(context, (a, b))
            if view is not None:
                yield Spec(self.task, (a, b), (view,))

    def offset(self, spec: Spec, context: SceneContext) -> np.ndarray:
        a, b = (context.obj(i).center for i in spec.objects)
        return b - a


class CenterDistance(_PairQuantity):
    task = "center_distance"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(np.linalg.norm(self.offset(spec, context)))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        a, b = (context.named[i] for i in spec.objects)
        return f"How far apart are the centers of {a} and {b}?"


class HorizontalDistance(_PairQuantity):
    task = "horizontal_distance"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(np.linalg.norm(self.offset(spec, context)[:2]))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        a, b = (context.named[i] for i in spec.objects)
        return f"What is the horizontal distance between the centers of {a} and {b}?"


class VerticalDistance(_PairQuantity):
    task = "vertical_distance"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(abs(self.offset(spec, context)[2]))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        a, b = (context.named[i] for i in spec.objects)
        return f"What is the vertical distance between the centers of {a} and {b}?"


class _ObjectQuantity(_Quantity):
    level = "L1"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        for instance_id in sorted(context.named):
            view = best_view(context, (instance_id,))
            if view is not None:
                yield Spec(self.task, (instance_id,), (view,))


class ObjectWidth(_ObjectQuantity):
    """Width = the longer horizontal side."""

    task = "object_width"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return horizontal_sides(context.obj(spec.objects[0]).box)[0]

    def stem(self, spec: Spec, context: SceneContext) -> str:
        return f"How wide is {context.named[spec.objects[0]]}?"


class ObjectHeight(_ObjectQuantity):
    task = "object_height"

    def measure(self, spec: Spec, context: SceneContext) -> float:
        return float(context.obj(spec.objects[0]).box.size[2])

    def stem(self, spec: Spec, context: SceneContext) -> str:
        return f"How tall is {context.named[spec.objects[0]]}?"
