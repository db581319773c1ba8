"""Deterministic numbers, balanced letters and yes/no, and distractors within the rules."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from psfm.qa.config import GenerationConfig
from psfm.qa.generate import generate_questions
from psfm.qa.options import MIN_SEPARATION, numeric_options
from psfm.qa.question import LETTERS
from psfm.qa.render_numbers import render_number, with_unit


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(0.125, "m", "0.13"), (1.005, "m", "1.01"), (2.5, "cm", "3"), (-0.001, "m", "0.00"), (12.25, "m2", "12.3"),
     (3.0, "count", "3"), (89.5, "deg", "90")],
)  # fmt: skip
def test_numbers_render_half_up_and_identically_everywhere(value, unit, text):
    assert render_number(value, unit) == text
    assert with_unit(1.2, "m") == "1.20 meters" and with_unit(4, "count") == "4"


@pytest.mark.parametrize("position", range(4))
def test_numeric_distractors_stay_in_range_and_apart(position):
    rng = random.Random(position)
    for truth in (0.37, 1.0, 2.46, 17.0, 140.0):
        options = numeric_options(truth, "m", position, rng)
        assert (
            options is not None and options == sorted(options) and options[position] == float(render_number(truth, "m"))
        )
        assert all(0.5 * truth - 0.01 <= o <= 2 * truth + 0.01 for o in options)
        assert all(b - a >= MIN_SEPARATION * b for a, b in zip(options, options[1:], strict=False))


def test_impossible_distractors_are_refused():
    assert numeric_options(1, "count", 3, random.Random(0)) is None  # no three integers below 1 in [0.5, 1)


def test_answers_are_balanced_and_generation_is_deterministic(world_scenes):
    config = GenerationConfig(per_task=6, per_scene=10_000)
    letters: dict[int, Counter] = {}
    yes_no: Counter = Counter()
    for _, _, facts in world_scenes:
        questions = generate_questions(facts, config)
        assert [q.to_json() for q in questions] == [q.to_json() for q in generate_questions(facts, config)]
        for q in questions:
            if q.format == "multiple_choice":
                letters.setdefault(len(q.choices), Counter())[q.answer] += 1
            elif q.format == "yes_no":
                yes_no[q.answer] += 1
    for count, seen in letters.items():
        expected = sum(seen.values()) / count
        assert set(seen) <= set(LETTERS[:count])
        assert all(abs(seen[letter] - expected) <= max(0.25 * expected, 3) for letter in LETTERS[:count]), seen
    assert abs(yes_no["yes"] - yes_no["no"]) <= max(0.15 * sum(yes_no.values()), 3), yes_no


def test_caps_are_respected(world_scenes):
    _, _, facts = world_scenes[0]
    questions = generate_questions(facts, GenerationConfig(per_task=1, per_scene=7))
    assert len(questions) == 7 and len({q.task for q in questions}) == 7
    assert len({q.id for q in questions}) == 7
