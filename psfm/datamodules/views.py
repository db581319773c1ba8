"""Which views of a scene a batch sees, and which of them are context or target.

All randomness of the view split lives here, on the data side; models receive index tensors.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from psfm.datamodules.covisibility import SceneCameras, overlap_scores
from psfm.errors import UsageError

STRATEGIES = ("random", "window")
OVERLAP_FROM = ("context", "others")


@dataclass
class ViewSampling:
    """How views are drawn per batch.

    Attributes:
        min_views, max_views: V is drawn uniformly in this range once per *batch* (so a batch
            stacks without padding, like Spa3R's dynamic sampler), capped by the scenes' view counts.
        context_ratio: C = max(1, int(context_ratio * V)) context views; the rest are targets.
        strategy: ``random`` draws any V views, in random order. ``window`` is Spa3R's sampler for
            video captures (stored views in capture order): V frames whose successive gaps are drawn
            in [``min_gap``, ``max_gap``] (the upper end shrinks to fit short captures; a capture
            too short for ``min_gap`` gives V sorted random frames). The window's first frame is
            the reference (view 0, context), the other context views are random among the rest, and
            the batch holds the views in capture order (``arrange``).
        min_gap, max_gap: frame gaps of ``window``; Spa3R uses 2-6 on ScanNet and 20-60 on ScanNet++.
        target_overlap: 0 = off. Otherwise, on scenes with poses, targets are drawn from the views
            with at least this fraction of their patch-centre rays seen by some context view
            (``psfm.datamodules.covisibility``); the best-scoring others fill up when too few
            qualify. Candidates are every non-context view (``random``) or every frame of the
            window's span (``window``).
        target_overlap_from: which views' sight the ``target_overlap`` score counts. ``context``: any
            context view. ``others``: a context view other than the reference, where the reference
            does not see it too; targets are then what only the other views show, so describing the
            reference view cannot predict them and the encoder must fuse (docs/pretraining.md, "Does
            the encoder fuse its views"). With one context view, ``others`` scores as ``context``.
        overlap_depth: z-depth, in the shard's pose units, at which the overlap test cuts the rays
            when no depth is loaded (with ``load_depth`` on metric shards: the reference view's median depth).
    """

    min_views: int = 4
    max_views: int = 12
    context_ratio: float = 0.5
    strategy: str = "random"
    min_gap: int = 1
    max_gap: int = 2
    target_overlap: float = 0.0
    target_overlap_from: str = "context"
    overlap_depth: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_views <= self.max_views:
            raise UsageError(f"views: need 1 <= min_views <= max_views, got {self.min_views}..{self.max_views}")
        if not 0.0 < self.context_ratio <= 1.0:
            raise UsageError(f"views: context_ratio must be in (0, 1], got {self.context_ratio}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"views: strategy must be 'random' or 'window', got {self.strategy!r}")
        if not 1 <= self.min_gap <= self.max_gap:
            raise UsageError(f"views: need 1 <= min_gap <= max_gap, got {self.min_gap}..{self.max_gap}")
        if not 0.0 <= self.target_overlap <= 1.0:
            raise UsageError(f"views: target_overlap is a fraction in [0, 1], got {self.target_overlap}")
        if self.target_overlap_from not in OVERLAP_FROM:
            raise UsageError(
                f"views: target_overlap_from must be one of {list(OVERLAP_FROM)}, got {self.target_overlap_from!r}"
            )
        if self.overlap_depth <= 0:
            raise UsageError(f"views: overlap_depth must be > 0, got {self.overlap_depth}")

    def num_views(self, rng: random.Random, available: int) -> int:
        """V for one batch, never more than the fewest views any of its scenes has."""
        return min(rng.randint(self.min_views, self.max_views), available)

    def num_context(self, num_views: int) -> int:
        return max(1, int(self.context_ratio * num_views))

    def select(
        self,
        rng: random.Random,
        available: int,
        num_views: int,
        cameras: SceneCameras | None = None,
        reference_depth: Callable[[int], float | None] | None = None,
    ) -> list[int]:
        """Stored view ids for one scene: the context views first (the reference, view 0, leading), then targets.

        Any prefix is again a valid draw (the batcher truncates when a later scene has fewer views).

        Args:
            cameras: the scene's cameras; needed for ``target_overlap`` (off without them).
            reference_depth: stored view id -> its typical z-depth in pose units, or None if unknown.
        """
        draw = self._window if self.strategy == "window" else self._random
        drawn = draw(rng, available, num_views)
        if not self.target_overlap or cameras is None:
            return drawn
        context = drawn[: self.num_context(num_views)]
        span = range(min(drawn), max(drawn) + 1) if self.strategy == "window" else range(available)
        candidates = [view for view in span if view not in context]
        depth = reference_depth(context[0]) if reference_depth is not None else None
        depth = depth or self.overlap_depth
        if self.target_overlap_from == "others" and len(context) > 1:
            scores = overlap_scores(cameras, candidates, context[1:], depth, hidden_from=context[:1])
        else:
            scores = overlap_scores(cameras, candidates, context, depth)
        return context + self._overlapping(rng, candidates, scores.tolist(), num_views - len(context))

    def arrange(self, view_ids: list[int], num_context: int) -> tuple[list[int], list[int], list[int]]:
        """Batch order of one scene's selected views, and the batch positions of its context and target views.

        ``view_ids`` come as ``select`` returns them, context first. ``window`` puts them in capture
        order (its reference is the earliest frame, so it stays view 0); ``random`` keeps them as drawn.
        """
        order = list(range(len(view_ids)))
        if self.strategy == "window":
            order.sort(key=view_ids.__getitem__)
        context = [position for position, index in enumerate(order) if index < num_context]
        targets = [position for position, index in enumerate(order) if index >= num_context]
        return order, context, targets

    # ----------------------------------------------------------------------------------------------
    @staticmethod
    def _random(rng: random.Random, available: int, num_views: int) -> list[int]:
        chosen = rng.sample(range(available), num_views)
        rng.shuffle(chosen)
        return chosen

    def _window(self, rng: random.Random, available: int, num_views: int) -> list[int]:
        """Spa3R's temporal window: the earliest frame first, the other frames in random order."""
        if num_views == 1:
            return [rng.randrange(available)]
        if available > (num_views - 1) * self.min_gap:
            max_gap = min(self.max_gap, (available - 1) // (num_views - 1))  # >= min_gap here
            frames = [rng.randint(0, available - 1 - (num_views - 1) * max_gap)]
            for _ in range(num_views - 1):
                frames.append(frames[-1] + rng.randint(self.min_gap, max_gap))
        else:  # too short a capture for the gaps
            frames = sorted(rng.sample(range(available), num_views))
        rest = frames[1:]
        rng.shuffle(rest)
        return [frames[0], *rest]

    def _overlapping(self, rng: random.Random, candidates: list[int], scores: list[float], count: int) -> list[int]:
        """``count`` targets drawn among candidates seen enough by the context, topped up by the best of the rest."""
        overlapping = [view for view, score in zip(candidates, scores, strict=True) if score >= self.target_overlap]
        if len(overlapping) >= count:
            return rng.sample(overlapping, count)
        rng.shuffle(overlapping)
        ranked = sorted(zip(scores, candidates, strict=True), key=lambda pair: (-pair[0], pair[1]))
        rest = [view for score, view in ranked if score < self.target_overlap]
        return overlapping + rest[: count - len(overlapping)]
