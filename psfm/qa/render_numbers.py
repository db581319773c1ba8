"""Deterministic rendering of numeric answers: one rounding rule and one spelling per unit.

Rounding goes through ``decimal`` with ROUND_HALF_UP on the shortest repr of the float, so 0.125 m
renders as "0.13" on every platform and Python version (``round`` and ``%`` formatting round half to
even on the binary value and disagree with people). Answers carry the bare number first, so
first-token parsers (VSI-Bench) read them; the unit lives in the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class Unit:
    """A unit: its key in tags, how questions spell it, and the decimals answers keep."""

    key: str
    words: str
    decimals: int


UNITS: dict[str, Unit] = {
    "m": Unit("m", "meters", 2),
    "cm": Unit("cm", "centimeters", 0),
    "m2": Unit("m2", "square meters", 1),
    "deg": Unit("deg", "degrees", 0),
    "count": Unit("count", "", 0),
}


def render_number(value: float, unit: str) -> str:
    """``value`` rounded half-up to the unit's decimals, e.g. ``render_number(1.005, "m") == "1.01"``."""
    places = UNITS[unit].decimals
    quantum = Decimal(1).scaleb(-places)
    text = str(Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP))
    return (
        "0" if places == 0 and text in ("-0", "0") else ("0." + "0" * places if text == "-0." + "0" * places else text)
    )


def with_unit(value: float, unit: str) -> str:
    """The number followed by its unit words, e.g. ``"1.20 meters"``; counts stay bare."""
    words = UNITS[unit].words
    return f"{render_number(value, unit)} {words}".strip()


def rendered_value(value: float, unit: str) -> float:
    """The number a reader of the rendered text sees (what distractor checks must compare)."""
    return float(render_number(value, unit))
