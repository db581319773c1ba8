"""SpatialVLM's qualitative predicates: left/right, front/behind, above/below, wide/thin, tall/short, big/small.

Each compares two named objects A and B and answers with one of two labels, so swapping A and B
flips the answer, and mirroring the scene in x flips left and right (both property-tested).
Egocentric predicates use the viewer frame of the question's view (``psfm.qa.frames``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from psfm.qa.boxes import bottom, box_volume, extent_along, horizontal_sides, top
from psfm.qa.context import SceneContext
from psfm.qa.frames import viewer_rotation
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import (
    CHOICE_FORMATS,
    Template,
    best_view_specs,
    clear_difference,
    too_close_to_order,
    unordered_pairs,
    visible_pair_specs,
)

VERTICAL_TOLERANCE_M = 0.02  # a box resting on another touches it: bottom == top up to annotation noise


class _PairTemplate(Template):
    """Two named objects, two opposite labels; ``labels[0]`` holds when A's key exceeds B's."""

    family = "spatialvlm"
    level = "L2"
    formats = CHOICE_FORMATS
    labels: tuple[str, str] = ("", "")
    framed = False  # True: the answer depends on the view (egocentric)
    claim_text = "Is {a} {label} {b}?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        if self.framed:
            return visible_pair_specs(self.task, context)
        return best_view_specs(self.task, context, unordered_pairs(context))


class _SizeComparison(_PairTemplate):
    """Compares an intrinsic size of the two boxes; the view only shows them."""

    question_text = "Is {a} {labels[0]} or {labels[1]} than {b}?"
    claim_text = "Is {a} {label} than {b}?"

    def size(self, context: SceneContext, instance_id: int) -> float:
        raise NotImplementedError

    def absolute_margin(self, context: SceneContext) -> float:
        return context.margins.compare_abs

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        a, b = (self.size(context, i) for i in spec.objects)
        if not clear_difference(a, b, self.absolute_margin(context), context.margins.compare_rel):
            return Skip("ambiguous:comparison_margin")
        return Answer(self.labels[0] if a > b else self.labels[1], self.labels)


class WideThin(_SizeComparison):
    """Width = the longer horizontal side of the box."""

    task = "wide_thin"
    labels = ("wider", "thinner")

    def size(self, context: SceneContext, instance_id: int) -> float:
        return horizontal_sides(context.obj(instance_id).box)[0]


class TallShort(_SizeComparison):
    task = "tall_short"
    labels = ("taller", "shorter")

    def size(self, context: SceneContext, instance_id: int) -> float:
        return float(context.obj(instance_id).box.size[2])


class BigSmall(_SizeComparison):
    """Size = box volume; the absolute margin is the volume of a cube of side ``2 * compare_abs``."""

    task = "big_small"
    labels = ("bigger", "smaller")

    def size(self, context: SceneContext, instance_id: int) -> float:
        return box_volume(context.obj(instance_id).box)

    def absolute_margin(self, context: SceneContext) -> float:
        return (2 * context.margins.compare_abs) ** 3


class AboveBelow(_PairTemplate):
    """A is above B when A's bottom is at or over B's top (boxes may touch); overlapping heights are skipped."""

    task = "above_below"
    labels = ("above", "below")
    question_text = "Is {a} above or below {b}?"

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        a, b = (context.obj(i).box for i in spec.objects)
        if bottom(a) >= top(b) - VERTICAL_TOLERANCE_M:
            return Answer("above", self.labels)
        if top(a) <= bottom(b) + VERTICAL_TOLERANCE_M:
            return Answer("below", self.labels)
        return Skip("ambiguous:vertical_overlap")


class _Egocentric(_PairTemplate):
    """Compares the two centres along one viewer axis (0 = right, 1 = forward) of the question's view."""

    framed = True
    axis = 0

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        camera = context.facts.cameras[spec.views[0]]
        rotation = viewer_rotation(camera.cam_to_world)
        if rotation is None:
            return Skip("camera_looks_vertically")
        boxes = [context.obj(i).box for i in spec.objects]
        local = (np.array([box.center for box in boxes]) - camera.center) @ rotation.T  # [2, 3] viewer coords
        if np.any(local[:, 1] <= 0):
            return Skip("object_behind_camera")
        extents = [extent_along(box, rotation[self.axis]) for box in boxes]
        a, b = local[:, self.axis]
        if too_close_to_order(a, b, extents, context.margins):
            return Skip("ambiguous:comparison_margin")
        if self.axis == 0:
            bearings = np.arctan2(local[:, 0], local[:, 1])  # image-side order must agree with lateral order
            if np.sign(bearings[0] - bearings[1]) != np.sign(a - b):
                return Skip("ambiguous:bearing_disagrees")
        return Answer(self.labels[0] if a < b else self.labels[1], self.labels)


class LeftRight(_Egocentric):
    """A is left of B when its lateral coordinate (viewer x) is smaller, by a margin, and its bearing agrees."""

    task = "left_right"
    labels = ("left", "right")
    axis = 0
    question_text = "From the camera's viewpoint, is {a} to the left or to the right of {b}?"
    claim_text = "From the camera's viewpoint, is {a} to the {label} of {b}?"


class FrontBehind(_Egocentric):
    """A is in front of B when it is nearer along the viewer's horizontal forward axis, by a margin."""

    task = "front_behind"
    labels = ("in front of", "behind")
    axis = 1
    question_text = "Seen from the camera, is {a} in front of or behind {b}?"
    claim_text = "Seen from the camera, is {a} {label} {b}?"
