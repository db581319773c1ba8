"""What a run's facts were made of, for ``summary.json``: objects by outcome, floors and rooms by source,
scenes that lack cameras, views or masks, and how the annotation's own counts agree with psfm's.

Nothing here changes a question; it says, in numbers, what the engine did with the input so that a
scene set whose boxes all tilt, whose floors were guessed or whose counts disagree shows it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from psfm.qa.facts import SceneFacts
from psfm.qa.floors import STRUCTURE_LABELS

MAX_EXAMPLES = 10


@dataclass
class FactsTally:
    """Sums over the scenes of one run (``add`` once per scene whose facts were made)."""

    objects: Counter = field(default_factory=Counter)
    max_tilt_deg: float = 0.0
    floors: Counter = field(default_factory=Counter)
    rooms: Counter = field(default_factory=Counter)
    scenes_without_cameras: int = 0
    scenes_without_views: int = 0
    scenes_without_masks: int = 0
    counts_compared: int = 0
    counts_agreeing: int = 0
    count_disagreements: list[str] = field(default_factory=list)

    def add(self, facts: SceneFacts, num_views: int) -> None:
        for key, value in facts.notes.items():
            if key == "max_tilt_deg":
                self.max_tilt_deg = max(self.max_tilt_deg, float(value))
            else:
                self.objects[key] += int(value)
        self.floors[facts.floor_source] += 1
        self.rooms[facts.room_source] += 1
        self.scenes_without_views += num_views == 0
        self.scenes_without_cameras += num_views > 0 and not facts.cameras
        self.scenes_without_masks += num_views > 0 and facts.masks is None
        if facts.annotated_counts is not None:
            self._compare_counts(facts)

    def _compare_counts(self, facts: SceneFacts) -> None:
        """psfm's count of each category (placed or not, duplicates merged) against the annotation's."""
        ours = Counter(o.category for o in (*facts.objects, *facts.unplaced))
        theirs = {k: v for k, v in (facts.annotated_counts or {}).items() if k.lower() not in STRUCTURE_LABELS}
        for category in sorted(set(theirs) | set(ours)):
            self.counts_compared += 1
            if ours[category] == theirs.get(category, 0):
                self.counts_agreeing += 1
            elif len(self.count_disagreements) < MAX_EXAMPLES:
                said = theirs.get(category, 0)
                self.count_disagreements.append(f"{facts.scene_id}: {category} {ours[category]} (annotation: {said})")

    def notes(self) -> list[str]:
        """Sentences for what a reader must know about the questions these facts allow."""
        said = []
        if self.scenes_without_views:
            said.append(
                f"{self.scenes_without_views} scene(s) without views: no images exported, only scene-level questions "
                "(the VSI-Bench tasks except appearance order); nothing framed by a view, no camera questions"
            )
        if self.scenes_without_cameras:
            said.append(
                f"{self.scenes_without_cameras} scene(s) with images but no cameras: no camera-framed questions "
                "(left/right, depth order, camera motion) and no single-view questions"
            )
        if self.scenes_without_masks:
            said.append(
                f"{self.scenes_without_masks} scene(s) without instance masks: no appearance-order questions "
                "(first appearances need per-view masks)"
            )
        if self.objects["objects/placed/levelled"]:
            said.append(
                f"{self.objects['objects/placed/levelled']} tilted box(es) levelled to the yaw box covering them "
                f"(largest tilt {self.max_tilt_deg:.1f} deg)"
            )
        return said

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": dict(sorted(self.objects.items())),
            "max_tilt_deg": self.max_tilt_deg,
            "floors": dict(sorted(self.floors.items())),
            "rooms": dict(sorted(self.rooms.items())),
            "scenes_without_views": self.scenes_without_views,
            "scenes_without_cameras": self.scenes_without_cameras,
            "scenes_without_masks": self.scenes_without_masks,
            "annotation_counts": {
                "compared": self.counts_compared,
                "agreeing": self.counts_agreeing,
                "disagreements": self.count_disagreements,
            },
            "notes": self.notes(),
        }
