"""The blind baseline: answers learned from one split's answers, scored by ``psfm eval``."""

from __future__ import annotations

import json

import pytest

from psfm.commands import eval as eval_command
from psfm.qa.blind import blind_predictions, fit_blind, main
from psfm.qa.question import Question

from .test_commands import compose_command, qa_run  # noqa: F401 - the module-scoped psfm qa run


def question(task: str, fmt: str, answer: str, value, unit=None, qid: str = "q") -> Question:
    return Question(qid, "s", task, "f", "L1", fmt, "?", answer, value, unit, [0], "single")


def test_blind_answers_are_the_fitted_split_s_mode_and_median():
    train = [
        question("object_size_estimation", "free_form", "40", 40.0, "cm"),
        question("object_size_estimation", "free_form", "100", 100.0, "cm"),
        question("object_size_estimation", "free_form", "55", 55.4, "cm"),
        question("left_right", "multiple_choice", "B", "left"),
        question("left_right", "multiple_choice", "B", "left"),
        question("left_right", "multiple_choice", "A", "right"),
        question("left_right", "yes_no", "no", "no"),
    ]
    fitted = fit_blind(train)
    assert fitted[("object_size_estimation", "free_form", True)] == "55"  # the median 55.4 cm, rendered as psfm qa does
    assert fitted[("left_right", "multiple_choice", False)] == "B"
    asked = [
        question("left_right", "yes_no", "yes", "yes", qid="a"),
        question("room_size_estimation", "free_form", "9", 9, "m2"),
    ]
    assert blind_predictions(fitted, asked) == [{"id": "a", "prediction": "no"}]  # room size never fitted


def test_blind_predictions_score_as_a_floor(qa_run, tmp_path):  # noqa: F811
    out, _ = qa_run
    questions = out / "questions.jsonl"
    predictions = tmp_path / "blind.jsonl"
    main([str(questions), str(questions), str(predictions)])  # fitted on the very questions it answers
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(lines) == len(questions.read_text().splitlines())
    metrics = eval_command.run(compose_command("eval", [f"predictions={predictions}", f"questions={questions}"]))
    assert metrics["parse_failure_rate"] == 0.0 and metrics["missing_rate"] == 0.0
    assert 0.0 < metrics["overall"] < 1.0
    # on its own answers, answering the mode is the frequency baseline for every label task
    assert metrics["overall"] == pytest.approx(metrics["frequency"], abs=0.05)
