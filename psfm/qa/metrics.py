"""Per-answer metrics: exact match, VSI-Bench MRA, SpatialVLM's [0.5x, 2x], SpatialRGPT's ±25 % and AbsRel.

MRA (VSI-Bench): mean over θ ∈ {0.50, 0.55, ..., 0.95} of 1[|ŷ − y| / y ≤ 1 − θ]. Their code
compares with ``≤``; for y = 2, ŷ = 2.5 the relative error 0.25 passes θ ≤ 0.75 (six of ten) and
MRA = 0.6, where a strict ``<`` gives 0.5. Parity goes down to the floats: the thresholds are
their ``np.linspace(0.5, 0.95, 10)`` and the test is their ``abs(ŷ - y) / y <= 1 - θ``, so
boundary cases come out exactly as theirs (y = 2, ŷ = 1.9 scores 1.0 but ŷ = 2.2 scores 0.9,
because 0.1 / 1 - 0.9 do not round alike).
"""

from __future__ import annotations

import math

import numpy as np

MRA_THRESHOLDS = np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2))  # VSI-Bench's construction: 10 values


def mean_relative_accuracy(prediction: float | None, truth: float, strict: bool = False) -> float:
    """VSI-Bench MRA in [0, 1]; a missing or non-finite prediction scores 0.

    Args:
        prediction: the parsed number, None when parsing failed.
        truth: the exact answer, > 0.
        strict: use ``<`` instead of VSI-Bench's ``≤`` (for comparison with papers that do).
    """
    if prediction is None or not math.isfinite(prediction) or truth <= 0:
        return 0.0
    error = abs(prediction - truth) / truth
    passed = error < 1 - MRA_THRESHOLDS if strict else error <= 1 - MRA_THRESHOLDS
    return float(passed.mean())


def relative_error(prediction: float, truth: float) -> float:
    return abs(prediction - truth) / truth


def within_factor_two(prediction: float | None, truth: float) -> bool:
    """SpatialVLM: the prediction lies in [0.5 y, 2 y]."""
    return prediction is not None and math.isfinite(prediction) and 0.5 * truth <= prediction <= 2.0 * truth


def within_quarter(prediction: float | None, truth: float) -> bool:
    """SpatialRGPT: relative error at most 25 %."""
    return prediction is not None and math.isfinite(prediction) and relative_error(prediction, truth) <= 0.25


def exact_match(prediction: str | None, truth: str) -> float:
    """Case-insensitive exact match of already-normalized strings."""
    return float(prediction is not None and prediction.lower() == truth.lower())
