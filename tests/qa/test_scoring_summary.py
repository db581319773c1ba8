"""Task means, bootstrap intervals over scenes, and chance / frequency baselines."""

from __future__ import annotations

import pytest

from psfm.qa.baselines import task_baselines
from psfm.qa.bootstrap import bootstrap_intervals
from psfm.qa.question import Question
from psfm.qa.scoring import score_all
from psfm.qa.summary import summarize


def make(qid, scene, task, fmt, answer, value, unit=None, choices=()):
    return Question(qid, scene, task, "f", "L1", fmt, "?", answer, value, unit, [0], "single", list(choices))


def test_baselines_match_hand_computation():
    questions = [
        make("a", "s0", "mc", "multiple_choice", "A", "x", choices=("x", "y", "z", "w")),
        make("b", "s0", "mc", "multiple_choice", "A", "x", choices=("x", "y", "z", "w")),
        make("c", "s1", "mc", "multiple_choice", "C", "x", choices=("x", "y", "z", "w")),
        make("d", "s1", "yn", "yes_no", "yes", "yes"),
        make("e", "s1", "yn", "yes_no", "no", "no"),
        make("f", "s0", "num", "free_form", "2", 2.0, "m"),
        make("g", "s1", "num", "free_form", "2", 2.0, "m"),
    ]
    baselines = task_baselines(questions)
    assert baselines["mc"] == {"chance": pytest.approx(0.25), "frequency": pytest.approx(2 / 3)}
    assert baselines["yn"] == {"chance": pytest.approx(0.5), "frequency": pytest.approx(0.5)}
    assert baselines["num"] == {"chance": pytest.approx(1.0), "frequency": pytest.approx(1.0)}  # one answer value


def test_bootstrap_intervals_bracket_the_estimate_and_are_reproducible():
    questions = [make(f"q{i}", f"s{i % 10}", "t", "yes_no", "yes", "yes") for i in range(100)]
    predictions = {f"q{i}": "yes" if i % 10 < 6 else "no" for i in range(100)}  # whole scenes right or wrong
    report = score_all(questions, predictions)
    low, high = bootstrap_intervals(report, samples=500, seed=1)["overall"]
    assert low < 0.6 < high and high - low > 0.2  # scenes are the unit: 10 of them, not 100 questions
    assert bootstrap_intervals(report, samples=500, seed=1) == bootstrap_intervals(report, samples=500, seed=1)
    metrics = summarize(report, questions, bootstrap=200)
    assert metrics["overall"] == pytest.approx(0.6) and metrics["task/t_count"] == 100
    assert metrics["parse_failure_rate"] == 0.0 and metrics["missing_rate"] == 0.0
