"""Counting why things were skipped, so every dropped object, scene or question shows up as a number."""

from __future__ import annotations

from collections import Counter


class SkipLog:
    """A tally of skip reasons (``"duplicate_label"``, ``"ambiguous:margin"`` ...), mergeable across scenes.

    Reasons are short snake-case keys so a summary table can list them; the first example message per
    reason is kept to make the table actionable.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def add(self, reason: str, example: str = "", count: int = 1) -> None:
        if count <= 0:
            return
        self.counts[reason] += count
        if example and reason not in self.examples:
            self.examples[reason] = example

    def update(self, other: SkipLog) -> None:
        self.counts.update(other.counts)
        for reason, example in other.examples.items():
            self.examples.setdefault(reason, example)

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
