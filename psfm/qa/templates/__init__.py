"""Question templates, one class per task, registered by name.

``TEMPLATES`` lists every task in a fixed order (generation iterates it, so the order is part of
determinism: a new task goes at the end of its family, and shifts the questions of the tasks after it).
"""

from __future__ import annotations

from psfm.qa.templates.base import Template
from psfm.qa.templates.camera import CameraMotion, CameraRotation, CameraTranslation, CameraTurn
from psfm.qa.templates.hispatial import CameraDistance, DepthOrder, Direction, Orientation, PointDepth, StackHeight
from psfm.qa.templates.predicates import AboveBelow, BigSmall, FrontBehind, LeftRight, TallShort, WideThin
from psfm.qa.templates.quantities import CenterDistance, HorizontalDistance, ObjectHeight, ObjectWidth, VerticalDistance
from psfm.qa.templates.vsi_measures import AbsoluteDistance, ObjectCount, ObjectSize, RoomSize
from psfm.qa.templates.vsi_relations import (
    AppearanceOrder,
    RelativeDirectionEasy,
    RelativeDirectionHard,
    RelativeDirectionMedium,
    RelativeDistance,
)
from psfm.qa.templates.vsi_route import RoutePlan

TEMPLATES: dict[str, Template] = {
    template.task: template
    for template in (
        # SpatialVLM: qualitative predicates and quantities
        LeftRight(),
        FrontBehind(),
        AboveBelow(),
        WideThin(),
        TallShort(),
        BigSmall(),
        CenterDistance(),
        HorizontalDistance(),
        VerticalDistance(),
        ObjectWidth(),
        ObjectHeight(),
        # HiSpatial levels L0-L3
        PointDepth(),
        DepthOrder(),
        CameraDistance(),
        Orientation(),
        Direction(),
        StackHeight(),
        # VSI-Bench
        ObjectCount(),
        ObjectSize(),
        RoomSize(),
        AbsoluteDistance(),
        RelativeDistance(),
        RelativeDirectionMedium(),  # before easy: the order of the levels before they took VSI-Bench's meaning
        RelativeDirectionEasy(),
        RelativeDirectionHard(),
        AppearanceOrder(),
        RoutePlan(),
        # camera-centric multi-view
        CameraRotation(),
        CameraTurn(),
        CameraTranslation(),
        CameraMotion(),
    )
}


def get_template(task: str) -> Template:
    """The template of ``task``; an unknown name fails listing the known ones."""
    if task not in TEMPLATES:
        raise KeyError(f"unknown QA task {task!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[task]


__all__ = ["TEMPLATES", "Template", "get_template"]
