"""VSI-Bench's route planning: fill in the turns of a walk from one named object to another.

"You are a robot beginning at A facing F. You want to navigate to B. ... 1. Go forward until F
2. [please fill in] 3. Go forward until X 4. [please fill in] 5. Go forward until B." The walk goes
straight from object centre to object centre in the horizontal plane. At each object on the way the
robot turns by the signed angle from the leg it arrived on to the leg it leaves on, named as in
relative direction (easy): ``back`` from 135°, else ``left`` or ``right``. Turns within
``margins.angle_deg`` of 0° or ±135° and legs shorter than ``margins.min_separation`` are skipped.

Every turn is masked. The options are turn sequences: the truth and others drawn from all the other
sequences of the same length, so each wrong option differs from the truth in at least one turn.
Obstacles are not modelled ("go forward until X" says nothing about what lies between).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np

from psfm.qa.context import SceneContext
from psfm.qa.question import Answer, Skip, Spec
from psfm.qa.templates.base import Template, angle_near, signed_turn_deg
from psfm.qa.templates.vsi_relations import LEFT_RIGHT_BACK_BOUNDARIES, left_right_or_back

TURNS = ("left", "right", "back")
MAX_TURNS = 2  # routes visit 1 or 2 objects between start and goal (3 or 9 possible turn sequences)
MAX_ROUTES_PER_LENGTH = 10_000  # larger scenes take every k-th route, so specs stay cheap to list
MASK = "[please fill in]"


def turns_text(turns: Sequence[str]) -> str:
    """An option as VSI-Bench writes it: ``"Turn Left, Turn Back"``."""
    return ", ".join(f"Turn {turn.capitalize()}" for turn in turns)


class RoutePlan(Template):
    """Start at A facing F, walk F -> (X ->) B; which turns are made on the way?"""

    task = "route_planning"
    family = "vsibench"
    level = "L3"
    formats = ("multiple_choice",)
    views_needed = "multi"

    def specs(self, context: SceneContext) -> Iterator[Spec]:
        ids = sorted(context.named)
        for turns in range(1, MAX_TURNS + 1):
            step = max(1, math.ceil(math.perm(len(ids), turns + 2) / MAX_ROUTES_PER_LENGTH))
            for route in itertools.islice(itertools.permutations(ids, turns + 2), 0, None, step):
                yield Spec(self.task, route)

    def answer(self, spec: Spec, context: SceneContext) -> Answer | Skip:
        stops = [context.obj(i).center[:2] for i in spec.objects]
        legs = [end - start for start, end in itertools.pairwise(stops)]
        if min(float(np.linalg.norm(leg)) for leg in legs) < context.margins.min_separation:
            return Skip("objects_too_close")
        turns = []
        for arriving, leaving in itertools.pairwise(legs):
            turn = signed_turn_deg(arriving, leaving)
            if angle_near(turn, LEFT_RIGHT_BACK_BOUNDARIES, context.margins.angle_deg):
                return Skip("ambiguous:angle_near_boundary")
            turns.append(left_right_or_back(turn))
        options = tuple(turns_text(sequence) for sequence in itertools.product(TURNS, repeat=len(turns)))
        return Answer(turns_text(turns), options)

    def stem(self, spec: Spec, context: SceneContext) -> str:
        names = [context.named[i] for i in spec.objects]
        steps = [f"Go forward until {names[1]}"]
        for name in names[2:]:
            steps += [MASK, f"Go forward until {name}"]
        actions = " ".join(f"{number}. {step}" for number, step in enumerate(steps, 1))
        return (
            f"You are a robot beginning at {names[0]} facing {names[1]}. You want to navigate to {names[-1]}. "
            f"You will perform the following actions (Note: for each {MASK}, choose either 'turn back,' "
            f"'turn left,' or 'turn right.'): {actions}. You have reached the final destination. "
            "A turn of at least 135 degrees is a 'turn back'."
        )
