"""Answer a spec on some facts, checking first that the facts can support it at all.

The checks are the ones no single template should have to repeat: every referent must be named in
this scene, poses must exist for view-framed questions, and metric answers need a metric scale
(facts with ``metric_scale == "none"`` never get a number in metres: no ad-hoc multipliers).
"""

from __future__ import annotations

import numpy as np

from psfm.qa.context import SceneContext
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import Template

METRIC_UNITS = ("m", "cm", "m2")


def answer_spec(template: Template, spec: Spec, context: SceneContext) -> Answer | Skip:
    """``template.answer`` behind the shared preconditions; numeric failures become counted skips."""
    if any(i not in context.named for i in spec.objects):
        return Skip("referent_missing")
    if template.unit in METRIC_UNITS and context.facts.metric_scale == "none":
        return Skip("no_metric_scale")
    if spec.views and template.needs_poses and max(spec.views) >= len(context.facts.cameras):
        return Skip("no_poses")
    try:
        with np.errstate(divide="raise", invalid="raise", over="raise"):
            return template.answer(spec, context)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as error:
        return Skip(f"numeric_error:{type(error).__name__}")
