"""VSI-Bench parity: its task names and levels, its rows, its parsing of answers and its overall score.

``vsibench_score`` below is written from VSI-Bench's published rules (lmms-eval task ``vsibench``), not
from psfm: the first token is ``text.split(' ')[0]`` with a trailing "." dropped, letters match
case-insensitively, numbers score MRA over ten thresholds 0.50..0.95 with ``<=``, per-type means, the
three relative-direction levels averaged into one entry, then the unweighted mean of the entries.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from psfm.commands import eval as eval_command
from psfm.commands import qa as qa_command
from psfm.qa.parsing import parse_prediction
from psfm.qa.templates import TEMPLATES

from .test_commands import compose_command

VSI_NUMERICAL = {"object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation"}
VSI_CHOICE = {
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
}


def first_token(prediction: str) -> str:
    return prediction.split(" ")[0].rstrip(".").strip()


def mra(prediction: float, truth: float) -> float:
    """Their thresholds are ``np.linspace(.5, .95, 10)``: floats that decide answers exactly 20 % off."""
    thresholds = np.linspace(0.5, 0.95, 10)
    return float(np.mean([abs(prediction - truth) / truth <= 1 - theta for theta in thresholds]))


def row_score(row: dict, prediction: str) -> float:
    token = first_token(prediction)
    if row["question_type"] in VSI_CHOICE:
        return float(token.lower() == row["ground_truth"].lower())
    try:
        return mra(float(token), float(row["ground_truth"]))
    except ValueError:
        return 0.0


def vsibench_score(rows: list[dict], predictions: dict[str, str]) -> dict[str, float]:
    per_type = defaultdict(list)
    for row in rows:
        per_type[row["question_type"]].append(row_score(row, predictions[row["id"]]))
    entries = {name: sum(scores) / len(scores) for name, scores in per_type.items()}
    levels = [entries.pop(name) for name in list(entries) if name.startswith("object_rel_direction_")]
    if levels:
        entries["object_rel_direction"] = sum(levels) / len(levels)
    entries["overall"] = sum(entries.values()) / len(entries)
    return entries


@pytest.fixture(scope="module")
def vsibench_run(tiny_world_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("vsibench") / "qa"
    overrides = [
        f"data={tiny_world_shards}",
        f"out={out}",
        "progress=false",
        "generation.per_task=6",
        "generation.per_scene=1000",
        "images=false",
    ]
    qa_command.run(compose_command("qa", overrides))
    return out


def test_vsibench_tasks_carry_its_names_and_levels():
    vsibench = {task for task, template in TEMPLATES.items() if template.family == "vsibench"}
    assert vsibench == VSI_NUMERICAL | VSI_CHOICE
    assert set(TEMPLATES["object_rel_direction_easy"].labels) == {"left", "right"}
    assert set(TEMPLATES["object_rel_direction_medium"].labels) == {"left", "right", "back"}
    assert set(TEMPLATES["object_rel_direction_hard"].labels) == {
        "front-left",
        "front-right",
        "back-left",
        "back-right",
    }


def test_vsibench_rows_hold_only_its_questions_in_its_columns(vsibench_run):
    rows = [json.loads(line) for line in (vsibench_run / "vsibench.jsonl").read_text().splitlines()]
    questions = [json.loads(line)["qa"] for line in (vsibench_run / "questions.jsonl").read_text().splitlines()]
    expected = [
        q["id"]
        for q in questions
        if (q["task"] in VSI_NUMERICAL and q["format"] == "free_form")
        or (q["task"] in VSI_CHOICE and q["format"] == "multiple_choice")
    ]
    assert [row["id"] for row in rows] == expected and len(rows) > 20
    assert {row["question_type"] for row in rows} & VSI_NUMERICAL and {
        row["question_type"] for row in rows
    } & VSI_CHOICE
    by_id = {q["id"]: q for q in questions}
    for row in rows:
        question = by_id[row["id"]]
        assert row["scene_name"] == question["scene_id"] and "Options:" not in row["question"]
        assert question["question"].startswith(row["question"])
        if row["question_type"] in VSI_CHOICE:
            assert row["ground_truth"] == question["answer"]
            assert row["options"] == [f"{'ABCD'[i]}. {c}" for i, c in enumerate(question["choices"])]
        else:
            assert row["options"] is None and float(row["ground_truth"]) == question["answer_value"]


def test_psfm_eval_gives_vsibench_its_own_overall_score(vsibench_run, tmp_path):
    rows = [json.loads(line) for line in (vsibench_run / "vsibench.jsonl").read_text().splitlines()]
    lines = [json.loads(line) for line in (vsibench_run / "questions.jsonl").read_text().splitlines()]
    predictions = {}
    for index, line in enumerate(lines):  # right, wrong, right behind a space, a number 20 % off
        qa = line["qa"]
        wrong = "Z" if qa["format"] == "multiple_choice" else "0"
        if qa["format"] == "free_form" and qa["unit"] is not None and index % 4 == 3:
            predictions[qa["id"]] = repr(qa["answer_value"] * 1.2)
        else:
            predictions[qa["id"]] = [qa["answer"], wrong, " " + qa["answer"], qa["answer"]][index % 4]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in predictions.items()))
    questions = f"questions={vsibench_run / 'questions.jsonl'}"
    metrics = eval_command.run(compose_command("eval", [f"predictions={path}", questions, "bootstrap=0"]))
    theirs = vsibench_score(rows, predictions)
    assert 0.2 < theirs["overall"] < 0.8
    assert metrics["vsibench/questions"] == len(rows)
    for name, score in theirs.items():
        assert metrics[f"vsibench/{name}"] == pytest.approx(score), name


@pytest.mark.parametrize(
    ("text", "question_format", "unit", "vsi", "lenient"),
    [
        ("B", "multiple_choice", None, "B", "B"),
        (" B", "multiple_choice", None, None, "B"),  # VSI-Bench: the first token of " B" is ""
        ("3.5", "free_form", "m", 3.5, 3.5),
        (" 3.5", "free_form", "m", None, 3.5),
        ("3.5 m", "free_form", "m", 3.5, 3.5),
    ],
)
def test_leading_spaces_fail_as_in_vsibench(text, question_format, unit, vsi, lenient):
    assert first_token(text) == "" or vsi is not None
    assert parse_prediction(text, question_format, unit, "vsi").value == vsi
    assert parse_prediction(text, question_format, unit, "lenient").value == lenient
