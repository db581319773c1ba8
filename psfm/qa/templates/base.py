"""The template contract: enumerate specs, answer a spec exactly (or refuse), and phrase it.

A template never renders formats itself: ``psfm.qa.formats`` turns (stem, answer) into free-form,
multiple-choice or yes/no questions the same way for every template, so balancing and distractor
rules live in one place. ``answer`` takes any ``SceneContext``, which is how lifted-vs-true
agreement is measured: the same spec answered on two sets of facts.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from psfm.qa.context import SceneContext
from psfm.qa.question import Answer, Skip, Spec

NUMBER_FORMATS = ("free_form", "multiple_choice")
CHOICE_FORMATS = ("multiple_choice", "yes_no")
ALL_FORMATS = ("free_form", "multiple_choice", "yes_no")


class Template(ABC):
    """One question family with an exact answer rule.

    Class attributes:
        task: unique name, used in tags and scores.
        family: ``spatialvlm`` | ``hispatial`` | ``vsibench`` | ``camera``.
        level: HiSpatial level ``L0``..``L3``.
        unit: unit key of numeric answers (``psfm.qa.render_numbers.UNITS``); None for label answers.
        formats: formats this template can be rendered in.
        views_needed: ``single`` (one view suffices) or ``multi`` (needs several views).
        needs_poses: whether answering uses the cameras of ``spec.views`` (point depth only needs the depth map).
    """

    task: str = ""
    family: str = ""
    level: str = ""
    unit: str | None = None
    formats: tuple[str, ...] = ALL_FORMATS
    views_needed: str = "single"
    needs_poses: bool = True

    @abstractmethod
    def specs(self, context: SceneContext) -> Iterator[Spec]:
        """Every candidate spec of the scene (cheap to produce; answered lazily)."""

    @abstractmethod
    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        """The exact answer, or why the spec is ambiguous or unanswerable on these facts."""

    @abstractmethod
    def stem(self, spec: Spec, context: SceneContext) -> str:
        """The question text (without answer instructions or options)."""

    def claim(self, spec: Spec, context: SceneContext, label: str) -> str:
        """A yes/no question asserting ``label`` (label templates that support ``yes_no``)."""
        raise NotImplementedError(f"{self.task} has no yes/no rendering")

    def label_text(self, spec: Spec, context: SceneContext, label: str) -> str:
        """How a label reads as an option or free-form answer."""
        return label

    def shown_views(self, spec: Spec, context: SceneContext) -> list[int]:
        """Views shown with the question: the framing view(s) for single-view tasks, else all."""
        if self.views_needed == "single" and spec.views:
            return list(spec.views)
        return list(range(context.num_views))


def named_pairs(context: SceneContext, view: int | None = None) -> Iterator[tuple[int, int]]:
    """Ordered pairs of distinct named objects (both seen in ``view`` when given)."""
    ids = context.visible.get(view, []) if view is not None else list(context.named)
    return itertools.permutations(sorted(ids), 2)


def unordered_pairs(context: SceneContext) -> Iterator[tuple[int, int]]:
    return itertools.combinations(sorted(context.named), 2)


def clear_difference(a: float, b: float, absolute: float, relative: float) -> bool:
    """``|a - b| > max(absolute, relative * mean(|a|, |b|))``: the comparison margin of REFERENCE §2."""
    return abs(a - b) > max(absolute, relative * (abs(a) + abs(b)) / 2)


def angle_near(angle_deg: float, boundaries_deg: tuple[float, ...], margin_deg: float) -> bool:
    """Whether ``angle_deg`` lies within ``margin_deg`` of any boundary (angles compared modulo 360)."""
    return any(abs((angle_deg - b + 180.0) % 360.0 - 180.0) < margin_deg for b in boundaries_deg)


def signed_turn_deg(forward: np.ndarray, target: np.ndarray) -> float:
    """Counter-clockwise angle (degrees, in (-180, 180]) from horizontal ``forward`` to ``target`` (z up).

    Positive means the target is to the left of someone facing ``forward``.
    """
    cross = forward[0] * target[1] - forward[1] * target[0]
    dot = forward[0] * target[0] + forward[1] * target[1]
    return float(np.degrees(np.arctan2(cross, dot)))
