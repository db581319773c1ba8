"""Answer-position balancing and multiple-choice distractors for numbers.

Balance: the correct letter (and yes vs no) cycles through the positions per task from a seeded
start, so every letter is equally likely over a dataset and a model cannot learn "C is usually
right". Numeric options are sorted ascending, so the correct letter is also the correct rank; the
distractors are placed below or above the truth to put it at the balanced rank, each within
×[0.5, 2] of the truth and at least 15 % away from every other option (REFERENCE §2).
"""

from __future__ import annotations

import math
import random

from psfm.qa.render_numbers import rendered_value

FACTOR_RANGE = (0.5, 2.0)
MIN_SEPARATION = 0.15
ATTEMPTS = 400


class Balancer:
    """Hands out answer positions ``0..k-1`` in rotation, per key, from a seeded random start.

    ``peek`` then ``commit``: a question that fails to render (no valid distractors) does not use up
    its position, so the rotation stays balanced among emitted questions.
    """

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.next: dict[tuple, int] = {}

    def peek(self, key: tuple, choices: int) -> int:
        full = (*key, choices)
        if full not in self.next:
            self.next[full] = self.rng.randrange(choices)
        return self.next[full] % choices

    def commit(self, key: tuple, choices: int) -> None:
        self.next[(*key, choices)] += 1


def _separated(values: list[float]) -> bool:
    ordered = sorted(values)
    return all(b - a >= MIN_SEPARATION * b for a, b in zip(ordered, ordered[1:], strict=False))


def numeric_options(value: float, unit: str, position: int, rng: random.Random, count: int = 4) -> list[float] | None:
    """``count`` ascending option values with the (rendered) truth at index ``position``; None if impossible.

    Values are compared as rendered (rounded to the unit's decimals), since that is what a reader sees.
    """
    truth = rendered_value(value, unit)
    if truth <= 0:
        return None
    below, above = position, count - 1 - position
    low, high = FACTOR_RANGE
    for _ in range(ATTEMPTS):
        options = [truth]
        for side, how_many in ((-1, below), (1, above)):
            for _ in range(how_many):
                factor = math.exp(rng.uniform(-math.log(1 - MIN_SEPARATION), math.log(1 / low if side < 0 else high)))
                options.append(rendered_value(truth / factor if side < 0 else truth * factor, unit))
        options.sort()
        in_range = options[0] >= low * truth and options[-1] <= high * truth
        if in_range and len(set(options)) == count and _separated(options) and options.index(truth) == position:
            return options
    return None
