"""Score predictions against questions: per-question scores, per-task and overall means, and reasons.

A question's score is exact match for choices (letters, yes/no, phrases) and MRA for numbers.
The overall score is the unweighted mean of task scores (VSI-Bench), so frequent tasks do not
dominate. Missing predictions and unparseable ones score 0 and are counted apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from psfm.qa.metrics import exact_match, mean_relative_accuracy, relative_error, within_factor_two, within_quarter
from psfm.qa.parsing import contains_number, normalize_phrase, parse_prediction
from psfm.qa.question import Question
from psfm.qa.vsibench import is_vsibench_question


@dataclass(frozen=True)
class Scored:
    """One question's outcome. Numeric fields are None for label questions."""

    question_id: str
    scene_id: str
    task: str
    numeric: bool
    score: float
    parse_failed: bool
    missing: bool
    vsibench: bool = False  # a VSI-Bench question type in VSI-Bench's format (psfm.qa.vsibench)
    within_factor_two: bool | None = None
    within_quarter: bool | None = None
    relative_error: float | None = None
    contains_number: bool | None = None


def is_numeric(question: Question) -> bool:
    """Free-form numbers are scored by MRA; multiple-choice numbers by their letter."""
    return question.unit is not None and question.format == "free_form"


def score_one(question: Question, prediction: str | None, mode: str = "vsi", strict: bool = False) -> Scored:
    """Score one prediction (None = the model gave no prediction for this question)."""
    numeric = is_numeric(question)
    base = {
        "question_id": question.id,
        "scene_id": question.scene_id,
        "task": question.task,
        "numeric": numeric,
        "vsibench": is_vsibench_question(question.task, question.format),
    }
    if prediction is None:
        extra = {"within_factor_two": False, "within_quarter": False, "contains_number": False} if numeric else {}
        return Scored(**base, score=0.0, parse_failed=False, missing=True, **extra)
    parsed = parse_prediction(prediction, question.format, question.unit if numeric else None, mode)
    if numeric:
        truth = float(question.answer_value)
        value = None if parsed.failed else float(parsed.value)
        return Scored(
            **base,
            score=mean_relative_accuracy(value, truth, strict=strict),
            parse_failed=parsed.failed,
            missing=False,
            within_factor_two=within_factor_two(value, truth),
            within_quarter=within_quarter(value, truth),
            relative_error=relative_error(value, truth) if value is not None and math.isfinite(value) else None,
            contains_number=contains_number(prediction),
        )
    truth = question.answer if question.format != "free_form" else normalize_phrase(question.answer)
    value = None if parsed.failed else str(parsed.value)
    return Scored(**base, score=exact_match(value, truth), parse_failed=parsed.failed, missing=False)


@dataclass
class ScoreReport:
    """Everything ``psfm eval`` prints and returns."""

    scored: list[Scored] = field(default_factory=list)
    problems: Counter = field(default_factory=Counter)

    def tasks(self) -> list[str]:
        return sorted({s.task for s in self.scored})

    def task_scores(self, scored: Iterable[Scored] | None = None) -> dict[str, float]:
        groups: dict[str, list[float]] = {}
        for s in self.scored if scored is None else scored:
            groups.setdefault(s.task, []).append(s.score)
        return {task: sum(v) / len(v) for task, v in sorted(groups.items())}

    @staticmethod
    def overall(task_scores: dict[str, float]) -> float:
        return sum(task_scores.values()) / len(task_scores) if task_scores else float("nan")


def score_all(
    questions: Iterable[Question], predictions: dict[str, str], mode: str = "vsi", strict: bool = False
) -> ScoreReport:
    """Score every question; predictions for unknown ids are counted, never silently dropped."""
    report = ScoreReport()
    known = set()
    for question in questions:
        known.add(question.id)
        scored = score_one(question, predictions.get(question.id), mode, strict)
        if scored.missing:
            report.problems["missing_prediction"] += 1
        elif scored.parse_failed:
            report.problems["unparseable_prediction"] += 1
        report.scored.append(scored)
    report.problems["prediction_for_unknown_question"] += len(set(predictions) - known)
    report.problems += Counter()  # drop zero counts
    return report
