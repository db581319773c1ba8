"""Seeded question sampling for one scene: every task, per-task and per-scene caps, balanced formats.

Determinism: the generator is seeded by (config seed, scene id) alone, so a scene's questions do
not depend on which other scenes are processed, in which order or by which worker.
"""

from __future__ import annotations

import random

from psfm.qa.answering import answer_spec
from psfm.qa.config import GenerationConfig
from psfm.qa.context import SceneContext, build_context
from psfm.qa.facts import SceneFacts
from psfm.qa.formats import render
from psfm.qa.options import Balancer
from psfm.qa.question import Question, Skip
from psfm.qa.reasons import SkipLog
from psfm.qa.templates import TEMPLATES, get_template


def _task_questions(
    task: str, context: SceneContext, config: GenerationConfig, balancer: Balancer, rng: random.Random, skips: SkipLog
) -> list[Question]:
    template = get_template(task)
    formats = [f for f in template.formats if f in config.formats]
    if not formats:
        return []
    specs = list(template.specs(context))
    rng.shuffle(specs)
    made: list[Question] = []
    for spec in specs:
        if len(made) >= config.per_task:
            break
        answer = answer_spec(template, spec, context)
        if isinstance(answer, Skip):
            skips.add(f"{task}/{answer.reason}")
            continue
        fmt = formats[balancer.peek((task, "format"), len(formats))]
        question = render(template, spec, answer, context, fmt, balancer, rng)
        if isinstance(question, Skip):
            skips.add(f"{task}/{question.reason}")
            continue
        balancer.commit((task, "format"), len(formats))
        made.append(question)
    return made


def generate_questions(facts: SceneFacts, config: GenerationConfig, skips: SkipLog | None = None) -> list[Question]:
    """Questions about one scene, at most ``config.per_task`` per task and ``config.per_scene`` in all.

    Tasks take turns (round robin in registry order) until the scene cap, so a low cap still
    spreads over tasks instead of filling up with the first ones.
    """
    skips = skips if skips is not None else SkipLog()
    rng = random.Random(f"{config.seed}/{facts.scene_id}")
    context = build_context(facts, config, skips)
    balancer = Balancer(rng)
    per_task = [
        _task_questions(task, context, config, balancer, rng, skips) for task in (config.tasks or list(TEMPLATES))
    ]
    chosen: list[Question] = []
    for round_index in range(config.per_task):
        for questions in per_task:
            if round_index < len(questions) and len(chosen) < config.per_scene:
                chosen.append(questions[round_index])
    for index, question in enumerate(chosen):
        question.id = f"{facts.scene_id}-{index:03d}"
    return chosen
