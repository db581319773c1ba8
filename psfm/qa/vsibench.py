"""VSI-Bench parity beyond the metric: its question types, its rows and its overall score.

VSI-Bench (Yang et al. 2024, "Thinking in Space"; the lmms-eval task ``vsibench``) scores a row by its
``question_type``: multiple-choice types by exact match of the answer's first token with the option
letter, numerical types by MRA against ``float(ground_truth)``. Its overall score first replaces the three
relative-direction levels by their mean (``object_rel_direction``), then averages the resulting entries
without weights (eight when every type is present).

psfm's VSI-Bench templates carry these names as their task names. A question is a VSI-Bench question
when its task is one of these types *in VSI-Bench's format* (numbers free-form, the rest multiple
choice): those are the rows of ``vsibench.jsonl`` (VSI-Bench's columns, so its own ``process_results``
and aggregation read them) and the questions behind ``psfm eval``'s ``vsibench/overall``.

One difference, by choice: when a relative-direction level has no question, VSI-Bench's lmms-eval code
fails (it pops all three) and some forks count the missing level as 0; psfm averages the levels present.
"""

from __future__ import annotations

from typing import Any

from psfm.qa.question import LETTERS, Question

NUMERICAL_TYPES = ("object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation")
CHOICE_TYPES = (
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
)
DIRECTION_LEVELS = CHOICE_TYPES[:3]
DIRECTION = "object_rel_direction"
QUESTION_TYPES = NUMERICAL_TYPES + CHOICE_TYPES


def is_vsibench_question(task: str, question_format: str) -> bool:
    """A VSI-Bench question type asked the way VSI-Bench asks it (a number free-form, a choice by letter)."""
    if task in NUMERICAL_TYPES:
        return question_format == "free_form"
    return task in CHOICE_TYPES and question_format == "multiple_choice"


def vsibench_record(question: Question, view_paths: list[str], dataset: str) -> dict[str, Any]:
    """One row in VSI-Bench's columns; ``question`` is the bare stem, as VSI-Bench's prompt adds options itself.

    ``ground_truth`` is the option letter, or the exact number as Python's ``repr`` writes it, so that
    VSI-Bench's ``float(ground_truth)`` scores against the same value ``psfm eval`` does (not the rounded
    text a model is trained to say).
    """
    numeric = question.task in NUMERICAL_TYPES
    options = None if numeric else [f"{LETTERS[i]}. {choice}" for i, choice in enumerate(question.choices)]
    return {
        "id": question.id,
        "dataset": dataset,
        "scene_name": question.scene_id,
        "question_type": question.task,
        "question": question.stem,
        "options": options,
        "ground_truth": repr(float(question.answer_value)) if numeric else question.answer,
        "images": [view_paths[v] for v in question.views],
    }


def vsibench_scores(task_scores: dict[str, float]) -> dict[str, float]:
    """VSI-Bench's aggregation of per-type scores: the direction levels merged, then ``overall``.

    Args:
        task_scores: mean score per task; tasks that are not VSI-Bench types are ignored.
    """
    entries = {task: score for task, score in task_scores.items() if task in QUESTION_TYPES}
    levels = [entries.pop(level) for level in DIRECTION_LEVELS if level in entries]
    if levels:
        entries[DIRECTION] = sum(levels) / len(levels)
    if entries:
        entries["overall"] = sum(entries.values()) / len(entries)
    return entries
