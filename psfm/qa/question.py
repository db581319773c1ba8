"""The question record every producer and scorer shares, and the spec it was generated from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class Spec:
    """What a question asks, free of wording and format, so it can be re-answered on other facts.

    Attributes:
        task: template name, e.g. ``"left_right"``.
        objects: instance ids of the referents, in the order the question names them.
        views: the view(s) that frame the question (the camera for "left of", the two views of a
            camera-motion question); empty for scene-level questions.
        point: normalized image point (x, y) in [0, 1) for point-level questions.
        category: the category a counting question is about.
    """

    task: str
    objects: tuple[int, ...] = ()
    views: tuple[int, ...] = ()
    point: tuple[float, float] | None = None
    category: str | None = None


@dataclass(frozen=True)
class Answer:
    """An exact answer: a number (in the template's unit) or a label out of ``labels``."""

    value: float | str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    """Why a spec yields no question (ambiguous, degenerate, unsupported); counted, never silent."""

    reason: str


@dataclass
class Question:
    """One rendered question with its exact answer and tags.

    ``answer`` is the exact text a perfect model outputs (a letter, ``yes``/``no``, a rendered number
    or a label); ``answer_value`` is the unrounded number or the label it stands for, which metrics
    score against. ``views`` lists the scene views shown with the question, in order. ``stem`` is the
    question without options or answer instructions (VSI-Bench's ``question`` column: its prompt adds
    those itself).
    """

    id: str
    scene_id: str
    task: str
    family: str
    level: str
    format: str
    question: str
    answer: str
    answer_value: float | str
    unit: str | None
    views: list[int]
    views_needed: str
    choices: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    stem: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Question:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in record.items() if k in names})


def spec_to_json(spec: Spec) -> dict[str, Any]:
    record = {"task": spec.task, "objects": list(spec.objects), "views": list(spec.views)}
    if spec.point is not None:
        record["point"] = list(spec.point)
    if spec.category is not None:
        record["category"] = spec.category
    return record


def spec_from_json(record: dict[str, Any]) -> Spec:
    point = record.get("point")
    return Spec(
        record["task"],
        tuple(record.get("objects", ())),
        tuple(record.get("views", ())),
        tuple(point) if point else None,
        record.get("category"),
    )
