"""Which views of a scene a batch sees, and which of them are context or target.

All randomness of the view split lives here, on the data side; models receive index tensors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class ViewSampling:
    """How views are drawn per batch.

    Attributes:
        min_views, max_views: V is drawn uniformly in this range once per *batch* (so a batch
            stacks without padding, like Spa3R's dynamic sampler), capped by the scenes' view counts.
        context_ratio: C = max(1, int(context_ratio * V)) context views; the rest are targets.
        strategy: ``random`` draws any V views; ``window`` draws V views from a contiguous stretch of
            the capture with a random stride, which keeps them covisible on video-like captures.
        max_stride: largest frame step for ``window``.
    """

    min_views: int = 4
    max_views: int = 12
    context_ratio: float = 0.5
    strategy: str = "random"
    max_stride: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.min_views <= self.max_views:
            raise ValueError(f"views: need 1 <= min_views <= max_views, got {self.min_views}..{self.max_views}")
        if not 0.0 < self.context_ratio <= 1.0:
            raise ValueError(f"views: context_ratio must be in (0, 1], got {self.context_ratio}")
        if self.strategy not in ("random", "window"):
            raise ValueError(f"views: strategy must be 'random' or 'window', got {self.strategy!r}")
        if self.max_stride < 1:
            raise ValueError(f"views: max_stride must be >= 1, got {self.max_stride}")

    def num_views(self, rng: random.Random, available: int) -> int:
        """V for one batch, never more than the fewest views any of its scenes has."""
        return min(rng.randint(self.min_views, self.max_views), available)

    def num_context(self, num_views: int) -> int:
        return max(1, int(self.context_ratio * num_views))

    def select(self, rng: random.Random, available: int, num_views: int) -> list[int]:
        """Stored view ids for one scene, in batch order; the first becomes view 0 (reference, context)."""
        if self.strategy == "window":
            stride = rng.randint(1, max(1, min(self.max_stride, (available - 1) // max(1, num_views - 1))))
            span = (num_views - 1) * stride + 1
            start = rng.randint(0, available - span)
            chosen = list(range(start, start + span, stride))
        else:
            chosen = rng.sample(range(available), num_views)
        rng.shuffle(chosen)
        return chosen
