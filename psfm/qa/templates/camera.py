"""Camera-centric multi-view questions: how the camera turned and moved between two views.

Rotation angle is the geodesic angle of R_i^T R_j; the turn is the signed change of the horizontal
viewing direction; motion is the displacement of the camera centre in view i's viewer frame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from psfm.qa.context import SceneContext
from psfm.qa.frames import viewer_rotation
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import ALL_FORMATS, NUMBER_FORMATS, Template, angle_near, measured, signed_turn_deg

BETWEEN = "between the first image and the second image"


class _ViewPair(Template):
    family = "camera"
    level = "L2"
    views_needed = "multi"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        for i, j in itertools.combinations(range(len(context.facts.cameras)), 2):
            yield Spec(self.task, views=(i, j))

    def shown_views(self, spec: Spec, context: SceneContext) -> list[int]:
        return list(spec.views)

    def poses(self, spec: Spec, context: SceneContext) -> tuple[np.ndarray, np.ndarray]:
        i, j = spec.views
        return context.facts.cameras[i].cam_to_world, context.facts.cameras[j].cam_to_world

    def phrase_fields(self, spec: Spec, context: SceneContext) -> dict[str, str]:
        return {"between": BETWEEN}


class CameraRotation(_ViewPair):
    task = "camera_rotation"
    unit = "deg"
    formats = NUMBER_FORMATS
    question_text = "By how many degrees in total did the camera rotate {between}?"

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        first, second = self.poses(spec, context)
        relative = first[:3, :3].T @ second[:3, :3]
        angle = math.degrees(math.acos(float(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0))))
        return measured(angle, context.margins.min_camera_rotation_deg)


class CameraTurn(_ViewPair):
    task = "camera_turn"
    formats = ALL_FORMATS
    labels = ("left", "right")
    question_text = "Did the camera turn to the left or to the right {between}?"
    claim_text = "Did the camera turn to the {label} {between}?"

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        first, second = (viewer_rotation(pose) for pose in self.poses(spec, context))
        if first is None or second is None:
            return Skip("camera_looks_vertically")
        turn = signed_turn_deg(first[1], second[1])
        if abs(turn) < context.margins.min_camera_rotation_deg or angle_near(turn, (180.0,), context.margins.angle_deg):
            return Skip("ambiguous:angle_near_boundary")
        return Answer("left" if turn > 0 else "right", self.labels)


class CameraTranslation(_ViewPair):
    task = "camera_translation"
    unit = "m"
    formats = NUMBER_FORMATS
    question_text = "How far did the camera move {between}?"

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        first, second = self.poses(spec, context)
        return measured(float(np.linalg.norm(second[:3, 3] - first[:3, 3])), context.margins.min_camera_translation)


class CameraMotion(_ViewPair):
    """Dominant horizontal direction of the camera's move, in the first view's viewer frame."""

    task = "camera_motion"
    formats = ALL_FORMATS
    labels = ("forward", "left", "backward", "right")
    question_text = (
        "Relative to where the first image looks, did the camera move mainly forward, backward, left, or right "
        "{between}?"
    )
    claim_text = "Relative to where the first image looks, did the camera move mainly {label} {between}?"

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        first, second = self.poses(spec, context)
        rotation = viewer_rotation(first)
        if rotation is None:
            return Skip("camera_looks_vertically")
        move = second[:3, 3] - first[:3, 3]
        if np.linalg.norm(move[:2]) < context.margins.min_camera_translation:
            return Skip("answer_too_small")
        turn = signed_turn_deg(rotation[1], move)
        if angle_near(turn, (45.0, 135.0, -45.0, -135.0), context.margins.angle_deg):
            return Skip("ambiguous:angle_near_boundary")
        return Answer(self.labels[int(round(turn / 90.0)) % 4], self.labels)
