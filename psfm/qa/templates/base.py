"""The template contract: enumerate specs, answer a spec exactly (or refuse), and phrase it.

A template never renders formats itself: ``psfm.qa.formats`` turns (stem, answer) into free-form,
multiple-choice or yes/no questions the same way for every template, so balancing and distractor
rules live in one place. ``answer`` takes any ``SceneContext``, which is how lifted-vs-true
agreement is measured: the same spec answered on two sets of facts.

Below the contract sit the pieces many templates share: which specs a scene offers (per view, per
pair, in the view that shows the referents best), the margin tests of REFERENCE §2, and turn angles.
"""

from __future__ import annotations

import itertools
import string
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from psfm.qa.config import Margins
from psfm.qa.context import SceneContext
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.views import best_view

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
        labels: the possible answers of a label template.
        question_text, claim_text: phrasings for the default ``stem`` and ``claim``, ``str.format``
            templates over ``phrase_fields`` (the referents' names ``{a}``, ``{b}``, ... in spec order),
            ``{labels[i]}`` and, in claims, the asserted ``{label}``.
    """

    task: str = ""
    family: str = ""
    level: str = ""
    unit: str | None = None
    formats: tuple[str, ...] = ALL_FORMATS
    views_needed: str = "single"
    needs_poses: bool = True
    labels: tuple[str, ...] = ()
    question_text: str = ""
    claim_text: str = ""

    @abstractmethod
    def specs(self, context: SceneContext) -> Iterator[Spec]:
        """Every candidate spec of the scene (cheap to produce; answered lazily)."""

    @abstractmethod
    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        """The exact answer, or why the spec is ambiguous or unanswerable on these facts."""

    def phrase_fields(self, spec: Spec, context: SceneContext) -> dict[str, str]:
        """What phrasings may name: ``{a}``, ``{b}``, ... are the referents' names in spec order."""
        return dict(zip(string.ascii_lowercase, (context.named[i] for i in spec.objects), strict=False))

    def stem(self, spec: Spec, context: SceneContext) -> str:
        """The question text (without answer instructions or options)."""
        if not self.question_text:
            raise NotImplementedError(f"{self.task} has no question_text and no stem of its own")
        return self.question_text.format(labels=self.labels, **self.phrase_fields(spec, context))

    def claim(self, spec: Spec, context: SceneContext, label: str) -> str:
        """A yes/no question asserting ``label`` (label templates that support ``yes_no``)."""
        if not self.claim_text:
            raise NotImplementedError(f"{self.task} has no yes/no rendering")
        return self.claim_text.format(label=label, labels=self.labels, **self.phrase_fields(spec, context))

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


def object_specs(task: str, context: SceneContext) -> Iterator[Spec]:
    """One view-free spec per named object."""
    for instance_id in sorted(context.named):
        yield Spec(task, (instance_id,))


def visible_object_specs(task: str, context: SceneContext) -> Iterator[Spec]:
    """One spec per (view, named object seen there): questions framed by the view that shows the object."""
    for view, seen in context.visible.items():
        for instance_id in seen:
            yield Spec(task, (instance_id,), (view,))


def visible_pair_specs(task: str, context: SceneContext) -> Iterator[Spec]:
    """One spec per (view, ordered pair of named objects both seen there)."""
    for view in context.visible:
        for a, b in named_pairs(context, view):
            yield Spec(task, (a, b), (view,))


def best_view_specs(task: str, context: SceneContext, groups: Iterable[tuple[int, ...]]) -> Iterator[Spec]:
    """One spec per group of referents, framed by the view showing them all best; groups no view shows are dropped."""
    for group in groups:
        view = best_view(context, group)
        if view is not None:
            yield Spec(task, group, (view,))


def measured(value: float, minimum: float) -> Answer | Skip:
    """A numeric answer, or ``answer_too_small`` when it is not finite or below ``minimum``.

    Relative metrics (MRA, ±25 %) divide by the truth, and a 3 cm "distance" is annotation noise.
    """
    if not np.isfinite(value) or value < minimum:
        return Skip("answer_too_small")
    return Answer(float(value))


def clear_difference(a: float, b: float, absolute: float, relative: float) -> bool:
    """``|a - b| > max(absolute, relative * mean(|a|, |b|))``: the comparison margin of REFERENCE §2."""
    return abs(a - b) > max(absolute, relative * (abs(a) + abs(b)) / 2)


def too_close_to_order(a: float, b: float, extents: Sequence[float], margins: Margins) -> bool:
    """Whether positions ``a`` and ``b`` along an axis are within ``max(compare_abs, compare_rel * mean extent)``.

    The margin scales with the objects' own extents along that axis: two big boxes whose centres are
    10 cm apart are side by side, not one in front of the other.
    """
    return abs(a - b) <= max(margins.compare_abs, margins.compare_rel * float(np.mean(extents)))


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
