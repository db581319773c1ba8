"""HiSpatial-style levels not covered elsewhere: point depth and depth order (L0), camera distance and
orientation (L1), direction between objects (L2), and a multi-step stacking problem (L3).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from psfm.qa.boxes import extent_along, horizontal_sides, long_axis_angle, top
from psfm.qa.context import SceneContext
from psfm.qa.frames import to_camera, viewer_rotation
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import (
    ALL_FORMATS,
    CHOICE_FORMATS,
    NUMBER_FORMATS,
    Template,
    angle_near,
    best_view_specs,
    signed_turn_deg,
    too_close_to_order,
    unordered_pairs,
    visible_object_specs,
    visible_pair_specs,
)

POINT_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)  # normalized coordinates of candidate points, per axis
FLAT_NEIGHBOURHOOD = 0.03  # a point's 3x3 depths may spread by this fraction (else it sits on an edge)
DIRECTIONS = ("front", "front-left", "left", "back-left", "back", "back-right", "right", "front-right")


class PointDepth(Template):
    """Z-depth at a normalized image point; points on depth edges are skipped (resizing would move them)."""

    task = "point_depth"
    family = "hispatial"
    level = "L0"
    unit = "m"
    formats = NUMBER_FORMATS
    needs_poses = False

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        if context.facts.depths is None:
            return
        for view in range(len(context.facts.depths)):
            for y in POINT_GRID:
                for x in POINT_GRID:
                    yield Spec(self.task, views=(view,), point=(x, y))

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        if context.facts.depths is None:
            return Skip("no_depth")
        depth = context.facts.depths[spec.views[0]]
        height, width = depth.shape
        row, col = int(spec.point[1] * height), int(spec.point[0] * width)
        patch = depth[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
        if np.any(patch <= 0):
            return Skip("depth_unknown")
        if (patch.max() - patch.min()) > FLAT_NEIGHBOURHOOD * patch.min():
            return Skip("ambiguous:depth_edge")
        return Answer(float(depth[row, col]))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        x, y = spec.point
        return (
            f"How far from the camera, measured along its viewing direction, is the surface point at image "
            f"position ({x:.2f}, {y:.2f})? Positions run from (0, 0) at the top-left to (1, 1) at the bottom-right."
        )


class DepthOrder(Template):
    """Is A closer to the camera than B (z-depth of the box centres, with a margin)?"""

    task = "depth_order"
    family = "hispatial"
    level = "L0"
    formats = CHOICE_FORMATS
    labels = ("closer to", "farther from")
    question_text = "Is {a} closer to or farther from the camera than {b}?"
    claim_text = "Is {a} {label} the camera than {b}?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return visible_pair_specs(self.task, context)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        camera = context.facts.cameras[spec.views[0]]
        boxes = [context.obj(i).box for i in spec.objects]
        depths = to_camera(np.array([b.center for b in boxes]), camera.cam_to_world)[:, 2]
        if np.any(depths <= 0):
            return Skip("object_behind_camera")
        extents = [extent_along(b, camera.cam_to_world[:3, 2]) for b in boxes]
        if too_close_to_order(depths[0], depths[1], extents, context.margins):
            return Skip("ambiguous:comparison_margin")
        return Answer(self.labels[0] if depths[0] < depths[1] else self.labels[1], self.labels)


class CameraDistance(Template):
    """Euclidean distance from the camera centre to the object's box centre."""

    task = "camera_distance"
    family = "hispatial"
    level = "L1"
    unit = "m"
    formats = NUMBER_FORMATS
    question_text = "How far is the center of {a} from the camera?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return visible_object_specs(self.task, context)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        camera = context.facts.cameras[spec.views[0]]
        return Answer(float(np.linalg.norm(context.obj(spec.objects[0]).center - camera.center)))


class Orientation(Template):
    """Does an elongated object's long side run along or across the camera's horizontal viewing direction?"""

    task = "orientation"
    family = "hispatial"
    level = "L1"
    formats = ALL_FORMATS
    labels = ("parallel", "perpendicular")
    question_text = (
        "Is the long side of {a} parallel or perpendicular to the camera's viewing direction (seen from above)?"
    )
    claim_text = "Seen from above, is the long side of {a} {label} to the camera's viewing direction?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return visible_object_specs(self.task, context)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        box = context.obj(spec.objects[0]).box
        longer, shorter = horizontal_sides(box)
        if longer < context.margins.min_elongation * shorter:
            return Skip("object_not_elongated")
        rotation = viewer_rotation(context.facts.cameras[spec.views[0]].cam_to_world)
        if rotation is None:
            return Skip("camera_looks_vertically")
        view_angle = math.atan2(rotation[1, 1], rotation[1, 0])
        offset = math.degrees(abs((long_axis_angle(box) - view_angle + math.pi / 2) % math.pi - math.pi / 2))
        if abs(offset - 45.0) < 2 * context.margins.angle_deg:
            return Skip("ambiguous:diagonal")
        return Answer(self.labels[0] if offset < 45.0 else self.labels[1], self.labels)


class Direction(Template):
    """Which of 8 horizontal directions (viewer frame) leads from A to B; sector edges are skipped."""

    task = "direction"
    family = "hispatial"
    level = "L2"
    formats = ALL_FORMATS
    labels = DIRECTIONS
    question_text = (
        "Seen from the camera and looking from above, in which direction is {b} from {a}: front, front-left, "
        "left, back-left, back, back-right, right, or front-right?"
    )
    claim_text = "Seen from the camera and looking from above, is {b} to the {label} of {a}?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        return visible_pair_specs(self.task, context)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        rotation = viewer_rotation(context.facts.cameras[spec.views[0]].cam_to_world)
        if rotation is None:
            return Skip("camera_looks_vertically")
        a, b = (context.obj(i).center for i in spec.objects)
        offset = b - a
        if np.linalg.norm(offset[:2]) < context.margins.min_separation:
            return Skip("objects_too_close")
        turn = signed_turn_deg(rotation[1], offset)  # counter-clockwise from the viewer's forward
        boundaries = tuple(22.5 + 45.0 * k for k in range(8))
        if angle_near(turn, boundaries, context.margins.angle_deg):
            return Skip("ambiguous:angle_near_boundary")
        return Answer(DIRECTIONS[int(round(turn / 45.0)) % 8], DIRECTIONS)


class StackHeight(Template):
    """Two steps: B's top above the floor (``facts.floor_height``) plus A's height, if A were put on B."""

    task = "stack_height"
    family = "hispatial"
    level = "L3"
    unit = "m"
    formats = NUMBER_FORMATS
    question_text = "If {a} were placed on top of {b}, how high above the floor would the top of {a} be?"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        both_ways = (pair for a, b in unordered_pairs(context) for pair in ((a, b), (b, a)))
        return best_view_specs(self.task, context, both_ways)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        moved, base = (context.obj(i).box for i in spec.objects)
        return Answer(top(base) - context.facts.floor_height + float(moved.size[2]))
