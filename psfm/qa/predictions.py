"""Loading what ``psfm eval`` scores: question records and model predictions, from JSONL.

Questions come from ``psfm qa``'s ``questions.jsonl`` (the ``qa`` field of each line) or from lines
that are question records themselves. Predictions are lines ``{"id": ..., "prediction": "..."}``
(``response``, ``pred`` and ``output`` are accepted too, and lmms-eval's ``resps`` lists); when no
question file is given, the prediction lines must carry their question (``qa`` field or record).
Lines that cannot be used are counted by reason, never fatal.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from psfm.qa.export import read_jsonl
from psfm.qa.question import Question

PREDICTION_KEYS = ("prediction", "response", "pred", "output")
REQUIRED = ("id", "scene_id", "task", "format", "answer", "answer_value")


def question_from_record(record: dict[str, Any]) -> Question | None:
    """The question a JSONL line describes (a chat-export line or a bare record), or None."""
    candidate = record.get("qa") if isinstance(record.get("qa"), dict) else record
    if not all(key in candidate for key in REQUIRED):
        return None
    try:
        return Question.from_json(candidate)
    except TypeError:
        return None


def prediction_text(record: dict[str, Any]) -> str | None:
    for key in PREDICTION_KEYS:
        if isinstance(record.get(key), str):
            return record[key]
    responses = record.get("resps")
    while isinstance(responses, list) and responses:
        responses = responses[0]
    return responses if isinstance(responses, str) else None


def load_questions(path: str | Path, problems: Counter) -> list[Question]:
    records, unreadable = read_jsonl(path)
    problems["question_line_not_json"] += len(unreadable)
    questions, seen = [], set()
    for record in records:
        question = question_from_record(record)
        if question is None:
            problems["question_line_without_question"] += 1
        elif question.id in seen:
            problems["duplicate_question_id"] += 1
        else:
            seen.add(question.id)
            questions.append(question)
    return questions


def load_predictions(
    path: str | Path, problems: Counter, with_questions: bool
) -> tuple[dict[str, str], list[Question]]:
    """``{id: prediction text}``, and the questions embedded in the lines when ``with_questions``."""
    records, unreadable = read_jsonl(path)
    problems["prediction_line_not_json"] += len(unreadable)
    predictions: dict[str, str] = {}
    questions: list[Question] = []
    for record in records:
        key, text = record.get("id"), prediction_text(record)
        if not isinstance(key, str) or text is None:
            problems["prediction_line_without_id_or_text"] += 1
            continue
        if key in predictions:
            problems["duplicate_prediction_id"] += 1
            continue
        predictions[key] = text
        if with_questions:
            question = question_from_record(record)
            if question is None:
                problems["prediction_line_without_question"] += 1
            else:
                questions.append(question)
    return predictions, questions
