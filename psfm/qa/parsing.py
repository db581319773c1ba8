"""Reading a model's free-text answer the way a benchmark does.

Two modes:

* ``vsi`` (VSI-Bench parity): VSI-Bench's ``pred.split(' ')[0].rstrip('.').strip()``, exactly: the
  text before the first space, a trailing "." dropped; choices compare it case-insensitively with the
  letter; numbers are ``float()`` of it, and a failure scores 0 ("2.5m" fails, as it does there). An
  answer that *starts* with a space has an empty first token there, so " B" and " 3" fail here too
  (a parse failure; ``lenient`` reads them).
* ``lenient``: choices accept "(B)", "B)" or "Answer: B"; numbers are the first number anywhere in
  the text, converted when a unit follows it ("45 cm" for a question in metres reads as 0.45).

Both report whether parsing failed, so the failure rate is shown apart from accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
UNIT_AFTER = re.compile(
    r"\s*(millimeters|millimetres|mm|centimeters|centimetres|cm|meters|metres|m|feet|foot|ft|inches|inch|in)\b",
    re.IGNORECASE,
)
TO_METRES = {"mm": 0.001, "cm": 0.01, "m": 1.0, "ft": 0.3048, "in": 0.0254}
UNIT_ALIASES = {
    "millimeters": "mm", "millimetres": "mm", "centimeters": "cm", "centimetres": "cm", "meters": "m",
    "metres": "m", "feet": "ft", "foot": "ft", "inches": "in", "inch": "in",
}  # fmt: skip
LETTER = re.compile(r"^\(?([A-Ha-h])[\).:]?$")
MODES = ("vsi", "lenient")


@dataclass(frozen=True)
class Parsed:
    """A prediction as read: ``value`` is a float, a letter, ``yes``/``no``, a normalized phrase, or None."""

    value: float | str | None

    @property
    def failed(self) -> bool:
        return self.value is None


def first_token(text: str) -> str:
    """VSI-Bench's ``pred.split(' ')[0].rstrip('.').strip()``: empty when ``text`` starts with a space."""
    return text.split(" ")[0].rstrip(".").strip()


def contains_number(text: str) -> bool:
    return NUMBER.search(text) is not None


def _number_vsi(text: str) -> float | None:
    try:
        value = float(first_token(text))
    except ValueError:
        return None
    return value if value == value else None  # float("nan") parses but is no answer


def _number_lenient(text: str, unit: str | None) -> float | None:
    match = NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group())
    said = UNIT_AFTER.match(text, match.end())
    if said and unit in ("m", "cm"):
        spoken = UNIT_ALIASES.get(said.group(1).lower(), said.group(1).lower())
        value = value * TO_METRES[spoken] / TO_METRES[unit]
    return value


def normalize_phrase(text: str) -> str:
    """Lower case, punctuation dropped, leading article dropped: "The red crate." -> "red crate"."""
    words = re.sub(r"[^\w\s-]", " ", text.lower()).split()
    if words and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


def parse_prediction(text: str, question_format: str, unit: str | None, mode: str = "vsi") -> Parsed:
    """Read ``text`` as an answer to a question of ``question_format`` (and numeric ``unit``, None for labels)."""
    if mode not in MODES:
        raise ValueError(f"unknown parsing mode {mode!r}; use one of {MODES}")
    if not isinstance(text, str) or not text.strip():
        return Parsed(None)
    if question_format == "multiple_choice":
        token = first_token(text if mode == "vsi" else text.strip())
        if mode == "lenient":
            found = LETTER.match(token) or re.search(r"\b(?:answer|option)\s*(?:is|:)?\s*\(?([A-H])\b", text, re.I)
            return Parsed(found.group(1).upper() if found else None)
        return Parsed(token.upper() if LETTER.match(token) and len(token) == 1 else None)
    if question_format == "yes_no":
        token = normalize_phrase(first_token(text) if mode == "vsi" else text).split(" ")[0]
        return Parsed(token if token in ("yes", "no") else None)
    if unit is not None:
        return Parsed(_number_vsi(text) if mode == "vsi" else _number_lenient(text, unit))
    phrase = normalize_phrase(text)
    return Parsed(phrase or None)
