"""Chance and frequency baselines per task, computed from the questions' own answers.

* chance: a uniform guess, i.e. 1 / options for multiple choice, 1/2 for yes/no, 1/|labels| for
  free-form labels, and for numbers the expected MRA of guessing an answer drawn from the task's
  own answer distribution (every pair of answers, averaged).
* frequency: always the most common answer of the task (letter, yes/no, label), and for numbers
  always the task's mean answer (VSI-Bench's "chance level (frequency)").

They are computed on the same questions they are compared with, which flatters them slightly:
a fair floor for a model, not a trained baseline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from psfm.qa.metrics import mean_relative_accuracy
from psfm.qa.question import Question
from psfm.qa.scoring import is_numeric

MAX_PAIRS = 400  # answers sampled per task for the pairwise numeric chance (it is quadratic)


def _chance(questions: Sequence[Question]) -> float:
    if is_numeric(questions[0]):
        values = np.array([float(q.answer_value) for q in questions])
        if len(values) > MAX_PAIRS:
            values = np.random.default_rng(0).choice(values, MAX_PAIRS, replace=False)
        return float(np.mean([mean_relative_accuracy(guess, truth) for guess in values for truth in values]))
    scores = []
    labels = {q.answer for q in questions if q.format == "free_form"}
    for q in questions:
        if q.format == "multiple_choice":
            scores.append(1 / max(len(q.choices), 1))
        elif q.format == "yes_no":
            scores.append(0.5)
        else:
            scores.append(1 / max(len(labels), 1))
    return float(np.mean(scores))


def _frequency(questions: Sequence[Question]) -> float:
    if is_numeric(questions[0]):
        values = [float(q.answer_value) for q in questions]
        mean = float(np.mean(values))
        return float(np.mean([mean_relative_accuracy(mean, truth) for truth in values]))
    scores = []
    for fmt in ("multiple_choice", "yes_no", "free_form"):
        answers = [q.answer.lower() for q in questions if q.format == fmt]
        if answers:
            scores.extend(
                [1.0] * Counter(answers).most_common(1)[0][1]
                + [0.0] * (len(answers) - Counter(answers).most_common(1)[0][1])
            )
    return float(np.mean(scores))


def task_baselines(questions: Sequence[Question]) -> dict[str, dict[str, float]]:
    """``{task: {"chance": ..., "frequency": ...}}``; numeric and label questions of a task are split."""
    groups: dict[tuple[str, bool], list[Question]] = {}
    for q in questions:
        groups.setdefault((q.task, is_numeric(q)), []).append(q)
    merged: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for (task, _), members in groups.items():
        entry = merged.setdefault(task, {"chance": [], "frequency": []})
        entry["chance"].append((_chance(members), len(members)))
        entry["frequency"].append((_frequency(members), len(members)))
    return {
        task: {name: sum(v * n for v, n in parts) / sum(n for _, n in parts) for name, parts in entry.items()}
        for task, entry in sorted(merged.items())
    }
