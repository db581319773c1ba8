"""Measuring lifting on the procedural world, where the true boxes are known.

Lifting runs in the frame of view 0 (poses relative to the first camera, as from a pose network or
SfM), so gravity must really be recovered; lifted boxes are mapped back to the world only for
scoring, with the known first pose. Answers need no mapping: they are invariant to the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from psfm.qa.answering import answer_spec
from psfm.qa.boxes import iou_3d
from psfm.qa.config import GenerationConfig
from psfm.qa.context import build_context
from psfm.qa.facts import SceneFacts
from psfm.qa.lifting.noise import corrupt_depth
from psfm.qa.lifting.views import ViewInput
from psfm.qa.metrics import mean_relative_accuracy
from psfm.qa.question import Answer
from psfm.qa.reasons import SkipLog
from psfm.qa.templates import TEMPLATES
from psfm.worlds.catalog import CATEGORY_BY_NAME
from psfm.worlds.render import RenderedView
from psfm.worlds.scene import OrientedBox, Scene


def world_inputs(
    scene: Scene, views: Sequence[RenderedView], noise: float = 0.0, rng: np.random.Generator | None = None
) -> tuple[list[ViewInput], np.ndarray]:
    """Lifting inputs in view 0's frame, and the transform [4, 4] from that frame to the world.

    ``noise`` > 0 corrupts depth with that multiplicative sigma plus edge flying pixels.
    """
    to_world = np.asarray(scene.cameras[0].cam_to_world, dtype=np.float64)
    from_world = np.linalg.inv(to_world)
    inputs = []
    for camera, view in zip(scene.cameras, views, strict=True):
        depth = corrupt_depth(view.depth, rng, noise) if noise > 0 else view.depth
        pose = from_world @ np.asarray(camera.cam_to_world, dtype=np.float64)
        inputs.append(ViewInput(depth, view.instance.astype(np.int64), np.asarray(camera.intrinsics), pose))
    return inputs, to_world


def scene_labels(scene: Scene) -> dict[int, tuple[str, str]]:
    """What a perfect segmenter would call each instance."""
    return {o.instance_id: (o.color_name, o.category) for o in scene.objects}


def round_instances(scene: Scene) -> frozenset[int]:
    """Instance ids of rotationally symmetric objects (their box yaw is a convention)."""
    return frozenset(o.instance_id for o in scene.objects if CATEGORY_BY_NAME[o.category].round)


def box_to_world(box: OrientedBox, lifted_to_world: np.ndarray) -> OrientedBox:
    """Map a gravity-frame box into the world with a rigid transform [4, 4] (yaw read from its turned x axis)."""
    center = lifted_to_world[:3, :3] @ np.asarray(box.center) + lifted_to_world[:3, 3]
    axis = lifted_to_world[:3, :3] @ box.rotation[:, 0]
    return OrientedBox(tuple(center.tolist()), box.size, float(np.arctan2(axis[1], axis[0])))


SYMMETRIC_YAWS = np.deg2rad(np.arange(0.0, 90.0, 5.0))


@dataclass
class IouReport:
    """IoU per true object that the views show, by category; ``None`` marks an object lifting lost.

    ``ious`` is strict: the true box as annotated. ``symmetric_ious`` differs for round objects
    only (cylinders, spheres, cones), whose box yaw is a convention (the world writes 0): any square
    around them is equally true, so the best of 18 yaws (5° steps over 90°) is taken.
    """

    ious: list[float | None] = field(default_factory=list)
    symmetric_ious: list[float | None] = field(default_factory=list)
    by_category: dict[str, list[float | None]] = field(default_factory=dict)

    def add(self, category: str, iou: float | None, symmetric_iou: float | None) -> None:
        self.ious.append(iou)
        self.symmetric_ious.append(symmetric_iou)
        self.by_category.setdefault(category, []).append(symmetric_iou)

    @staticmethod
    def average(values: list[float | None], lost_as_zero: bool = True) -> float:
        """Mean IoU; lost objects count 0 (``lost_as_zero``) or are left out."""
        used = [0.0 if v is None else v for v in values] if lost_as_zero else [v for v in values if v is not None]
        return float(np.mean(used)) if used else float("nan")

    @property
    def mean(self) -> float:
        return self.average(self.ious)

    @property
    def symmetric_mean(self) -> float:
        return self.average(self.symmetric_ious)

    @property
    def matched_symmetric_mean(self) -> float:
        return self.average(self.symmetric_ious, lost_as_zero=False)

    @property
    def recall(self) -> float:
        return float(np.mean([v is not None for v in self.ious])) if self.ious else float("nan")


def lifted_iou(
    truth: SceneFacts, lifted: SceneFacts, min_pixels: int, report: IouReport, round_ids: frozenset[int] = frozenset()
) -> None:
    """Add one IoU per true object covering at least ``min_pixels`` in some view to ``report``.

    The lifted frame is mapped to the world through the first camera, whose pose both facts know.
    ``round_ids`` are the rotationally symmetric objects (see ``IouReport``).
    """
    lifted_to_world = truth.cameras[0].cam_to_world @ np.linalg.inv(lifted.cameras[0].cam_to_world)
    by_id = {o.instance_id: o for o in lifted.objects}
    for obj in truth.objects:
        if not obj.pixels_per_view or max(obj.pixels_per_view) < min_pixels:
            continue
        match = by_id.get(obj.instance_id)
        if match is None:
            report.add(obj.category, None, None)
            continue
        lifted_box = box_to_world(match.box, lifted_to_world)
        iou = iou_3d(obj.box, lifted_box)
        symmetric = iou
        if obj.instance_id in round_ids:
            turned = (OrientedBox(obj.box.center, obj.box.size, obj.box.yaw + yaw) for yaw in SYMMETRIC_YAWS)
            symmetric = max(iou_3d(box, lifted_box) for box in turned)
        report.add(obj.category, iou, symmetric)


@dataclass
class AgreementReport:
    """Lifted-vs-true answers per task: label agreement and number MRA.

    A question the lifted facts cannot answer (its object was lost or gated out, or it falls inside
    an ambiguity margin there) is recorded as ``None``: it scores 0 in the headline figures and is
    left out of the ``answered_*`` ones, so both "how often" and "how well" are visible.
    """

    labels: dict[str, list[float | None]] = field(default_factory=dict)
    numbers: dict[str, list[float | None]] = field(default_factory=dict)
    lifted_skips: SkipLog = field(default_factory=SkipLog)

    def add(self, task: str, numeric: bool, score: float | None) -> None:
        (self.numbers if numeric else self.labels).setdefault(task, []).append(score)

    @staticmethod
    def _mean(groups: dict[str, list[float | None]], unanswered_as_zero: bool = True) -> float:
        values = [v for scores in groups.values() for v in scores]
        used = [0.0 if v is None else v for v in values] if unanswered_as_zero else [v for v in values if v is not None]
        return float(np.mean(used)) if used else float("nan")

    @property
    def label_agreement(self) -> float:
        return self._mean(self.labels)

    @property
    def number_mra(self) -> float:
        return self._mean(self.numbers)

    @property
    def answered_label_agreement(self) -> float:
        return self._mean(self.labels, unanswered_as_zero=False)

    @property
    def answered_number_mra(self) -> float:
        return self._mean(self.numbers, unanswered_as_zero=False)

    @property
    def answered_share(self) -> float:
        values = [v for groups in (self.labels, self.numbers) for scores in groups.values() for v in scores]
        return float(np.mean([v is not None for v in values])) if values else float("nan")


def answer_agreement(
    truth: SceneFacts, lifted: SceneFacts, config: GenerationConfig, report: AgreementReport, per_task: int = 20
) -> None:
    """Answer up to ``per_task`` true-answerable specs per task on both facts and compare.

    Specs are those the true facts answer (ambiguity filters applied on the truth, as generation
    would); the lifted facts must reproduce them. Point depth and camera tasks are excluded: they
    read the same depth maps and poses on both sides, which would flatter the figure.
    """
    rng = np.random.default_rng(config.seed)
    true_context = build_context(truth, config, SkipLog())
    lifted_context = build_context(lifted, config, report.lifted_skips)
    for task, template in TEMPLATES.items():
        if task == "point_depth" or template.family == "camera":
            continue
        specs = list(template.specs(true_context))
        rng.shuffle(specs)
        used = 0
        for spec in specs:
            if used >= per_task:
                break
            expected = answer_spec(template, spec, true_context)
            if not isinstance(expected, Answer):
                continue
            used += 1
            got = answer_spec(template, spec, lifted_context)
            if not isinstance(got, Answer):
                report.lifted_skips.add(f"{task}/{got.reason}")
                report.add(task, template.unit is not None, None)
            elif template.unit is not None:
                report.add(task, True, mean_relative_accuracy(float(got.value), float(expected.value)))
            else:
                report.add(task, False, float(got.value == expected.value))
