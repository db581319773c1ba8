"""Render an answered spec as a free-form, multiple-choice or yes/no question, the same way for every task.

Wording follows VSI-Bench's conventions so its parsers apply: multiple choice lists ``A. ...``
options and asks for the letter; numbers are asked as a single number in a named unit.
"""

from __future__ import annotations

import random

from psfm.qa.context import SceneContext
from psfm.qa.options import Balancer, numeric_options
from psfm.qa.question import LETTERS, Answer, Question, Skip, Spec, spec_to_json
from psfm.qa.render_numbers import UNITS, render_number, with_unit
from psfm.qa.templates.base import Template

MAX_OPTIONS = 4
LETTER_PROMPT = "Answer with the option's letter from the given choices directly."


def _question(
    template: Template, spec: Spec, context: SceneContext, fmt: str, text: str, answer: str, value, stem: str
) -> Question:
    return Question(
        id="",
        scene_id=context.facts.scene_id,
        task=template.task,
        family=template.family,
        level=template.level,
        format=fmt,
        question=text,
        answer=answer,
        answer_value=value,
        unit=template.unit,
        views=template.shown_views(spec, context),
        views_needed=template.views_needed,
        spec=spec_to_json(spec),
        stem=stem,
    )


def _choices_text(stem: str, options: list[str]) -> str:
    listed = "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))
    return f"{stem}\nOptions:\n{listed}\n{LETTER_PROMPT}"


def render(
    template: Template,
    spec: Spec,
    answer: Answer,
    context: SceneContext,
    fmt: str,
    balancer: Balancer,
    rng: random.Random,
) -> Question | Skip:
    """One question in ``fmt``; ``Skip`` when the format cannot be made unambiguous (e.g. no distractors)."""
    stem = template.stem(spec, context)
    if template.unit is not None:
        value = float(answer.value)
        if fmt == "free_form":
            words = UNITS[template.unit].words
            instruction = f"Answer with a single number in {words}." if words else "Answer with a single number."
            text, answer_text = f"{stem} {instruction}", render_number(value, template.unit)
            return _question(template, spec, context, fmt, text, answer_text, value, stem)
        if fmt == "multiple_choice":
            key = (template.task, fmt)
            position = balancer.peek(key, MAX_OPTIONS)
            options = numeric_options(value, template.unit, position, rng, MAX_OPTIONS)
            if options is None:
                return Skip("no_distractors")
            balancer.commit(key, MAX_OPTIONS)
            texts = [with_unit(option, template.unit) for option in options]
            text = _choices_text(stem, texts)
            question = _question(template, spec, context, fmt, text, LETTERS[position], value, stem)
            question.choices = texts
            return question
        return Skip(f"format_unsupported:{fmt}")
    label = str(answer.value)
    if fmt == "free_form":
        text = f"{stem} Answer with a single word or phrase."
        return _question(template, spec, context, fmt, text, template.label_text(spec, context, label), label, stem)
    if fmt == "multiple_choice":
        others = [option for option in answer.labels if option != label]
        rng.shuffle(others)
        others = others[: MAX_OPTIONS - 1]
        if not others:
            return Skip("no_distractors")
        key = (template.task, fmt)
        position = balancer.peek(key, len(others) + 1)
        balancer.commit(key, len(others) + 1)
        labels = [*others[:position], label, *others[position:]]
        texts = [template.label_text(spec, context, option) for option in labels]
        question = _question(template, spec, context, fmt, _choices_text(stem, texts), LETTERS[position], label, stem)
        question.choices = texts
        return question
    if fmt == "yes_no":
        wrong = [option for option in answer.labels if option != label]
        if not wrong:
            return Skip("no_false_claim")
        key = (template.task, fmt)
        say_yes = balancer.peek(key, 2) == 0
        balancer.commit(key, 2)
        asserted = label if say_yes else rng.choice(wrong)
        claim = template.claim(spec, context, asserted)
        answer_text = "yes" if say_yes else "no"
        return _question(template, spec, context, fmt, f"{claim} Answer yes or no.", answer_text, answer_text, claim)
    return Skip(f"format_unsupported:{fmt}")
