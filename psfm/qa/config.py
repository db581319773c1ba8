"""Knobs of question generation: caps, formats and the ambiguity margins (REFERENCE §2)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Margins:
    """Decision-boundary margins: a question whose answer would flip within them is skipped.

    Comparisons need ``|difference| > max(compare_abs, compare_rel * mean)`` of the compared
    quantity; options closer than ``option_gap`` (``option_gap_small_room`` in rooms up to
    ``small_room_area`` m²) are ambiguous; angles within ``angle_deg`` of a sector boundary are too.
    """

    compare_abs: float = 0.05  # metres (volumes: a cube of side 2 x compare_abs, see predicates.BigSmall)
    compare_rel: float = 0.25
    option_gap: float = 0.30
    option_gap_small_room: float = 0.15
    small_room_area: float = 40.0
    angle_deg: float = 10.0
    min_length: float = 0.10  # numeric answers in metres below this are skipped (MRA divides by them)
    min_separation: float = 0.30  # metres between objects before a direction between them is asked
    min_camera_translation: float = 0.20
    min_camera_rotation_deg: float = 10.0
    min_elongation: float = 1.3  # long/short side before an object has an orientation


@dataclass
class GenerationConfig:
    """How many questions of which kinds a scene gets.

    Attributes:
        seed: with the scene id, seeds every choice (same config + scene -> same questions).
        tasks: template names to use; empty = all registered.
        formats: allowed formats; a template uses those it supports.
        per_task: cap per task per scene.
        per_scene: cap per scene over all tasks.
        min_visible_pixels / min_visible_fraction: an object counts as seen in a view when it covers
            at least max(pixels, fraction * H * W) pixels there.
        margins: ambiguity filters.
        room_size_from_boxes: ask room size where the floor was only estimated from the boxes' footprints
            (no room in the annotation, no depth): furniture rarely lines every wall, so it underestimates.
    """

    seed: int = 0
    tasks: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=lambda: ["free_form", "multiple_choice", "yes_no"])
    per_task: int = 2
    per_scene: int = 48
    min_visible_pixels: int = 8
    min_visible_fraction: float = 0.002
    margins: Margins = field(default_factory=Margins)
    room_size_from_boxes: bool = False
