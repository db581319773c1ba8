"""What the procedural world is furnished with: object categories and the colour palette."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """An object category: its primitive shape and size ranges in metres.

    ``width``/``depth`` bound the footprint (for round shapes both are the diameter), ``height`` the
    vertical extent. ``support`` says whether other objects may be stacked on it, ``stackable``
    whether it may itself stand on a supporting object instead of the floor.
    """

    name: str
    shape: str
    width: tuple[float, float]
    depth: tuple[float, float]
    height: tuple[float, float]
    round: bool = False
    support: bool = False
    stackable: bool = False


CATEGORIES: tuple[Category, ...] = (
    Category("table", "table", (0.8, 1.6), (0.6, 1.0), (0.70, 0.80), support=True),
    Category("cabinet", "box", (0.5, 1.0), (0.4, 0.6), (0.9, 1.6), support=True),
    Category("shelf", "box", (0.8, 1.2), (0.3, 0.4), (1.4, 2.0)),
    Category("crate", "box", (0.3, 0.6), (0.3, 0.6), (0.25, 0.5), support=True, stackable=True),
    Category("barrel", "cylinder", (0.4, 0.7), (0.4, 0.7), (0.6, 1.0), round=True),
    Category("bin", "cylinder", (0.24, 0.4), (0.24, 0.4), (0.3, 0.5), round=True, stackable=True),
    Category("vase", "cylinder", (0.12, 0.2), (0.12, 0.2), (0.15, 0.35), round=True, stackable=True),
    Category("ball", "sphere", (0.2, 0.6), (0.2, 0.6), (0.2, 0.6), round=True, stackable=True),
    Category("cone", "cone", (0.24, 0.5), (0.24, 0.5), (0.3, 0.7), round=True, stackable=True),
)
CATEGORY_BY_NAME = {category.name: category for category in CATEGORIES}

# Named colours (linear-ish RGB in [0, 1]) so questions can say "the red crate".
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.12, 0.10),
    "green": (0.15, 0.62, 0.20),
    "blue": (0.12, 0.25, 0.80),
    "yellow": (0.92, 0.82, 0.15),
    "orange": (0.95, 0.50, 0.10),
    "purple": (0.50, 0.20, 0.65),
    "white": (0.92, 0.92, 0.90),
    "black": (0.08, 0.08, 0.09),
    "gray": (0.50, 0.50, 0.52),
    "brown": (0.45, 0.28, 0.14),
    "pink": (0.95, 0.55, 0.70),
    "cyan": (0.15, 0.75, 0.80),
}
FLOOR_PATTERNS = ("checker", "stripes", "planks", "plain")
