"""A blind baseline model: it answers from the answers of another split, never looking at a scene.

VSI-Bench reports a "blind" LLM beside its vision models; this is the trained-on-train version of
that floor. Per (task, format), fitted on a question file of one split (usually train):

* multiple choice: the most frequent correct letter (the letter balancer keeps it near chance, which
  is the point: no model should gain from letter bias);
* yes/no and free-form labels: the most frequent answer;
* numbers: the median answer, rendered in the question's unit as ``psfm qa`` renders numbers.

A (task, format) the fitting split never asked gets no prediction (``psfm eval`` counts it missing).

    python -m psfm.qa.blind data/qa/train/questions.jsonl data/qa/val/questions.jsonl preds.jsonl
    psfm eval predictions=preds.jsonl questions=data/qa/val/questions.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from psfm.io import atomic_write_bytes
from psfm.qa.predictions import load_questions
from psfm.qa.question import Question
from psfm.qa.render_numbers import render_number
from psfm.qa.scoring import is_numeric


def _key(question: Question) -> tuple[str, str, bool]:
    return question.task, question.format, is_numeric(question)


def fit_blind(questions: Sequence[Question]) -> dict[tuple[str, str, bool], str]:
    """The one answer text per (task, format, numeric) that the blind model gives."""
    groups: dict[tuple[str, str, bool], list[Question]] = {}
    for question in questions:
        groups.setdefault(_key(question), []).append(question)
    answers = {}
    for key, members in groups.items():
        if key[2] and key[1] == "free_form":
            median = float(np.median([float(q.answer_value) for q in members]))
            answers[key] = render_number(median, members[0].unit)
        else:
            answers[key] = Counter(q.answer for q in members).most_common(1)[0][0]
    return answers


def blind_predictions(fitted: dict[tuple[str, str, bool], str], questions: Sequence[Question]) -> list[dict]:
    """``{"id", "prediction"}`` records for ``questions`` that the fitted blind model can answer."""
    return [{"id": q.id, "prediction": fitted[_key(q)]} for q in questions if _key(q) in fitted]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fit_on", help="questions.jsonl whose answers the blind model learns (e.g. the train split)")
    parser.add_argument("questions", help="questions.jsonl to answer (e.g. the val split)")
    parser.add_argument("out", help="predictions JSONL to write (atomically)")
    args = parser.parse_args(argv)
    problems: Counter = Counter()
    fitted = fit_blind(load_questions(args.fit_on, problems))
    if not fitted:
        raise SystemExit(f"psfm.qa.blind: no questions in {args.fit_on}")
    targets = load_questions(args.questions, problems)
    records = blind_predictions(fitted, targets)
    atomic_write_bytes(args.out, "".join(json.dumps(r) + "\n" for r in records).encode())
    print(f"{len(records)} of {len(targets)} questions answered blind -> {Path(args.out)}")


if __name__ == "__main__":
    main()
