"""Multi-view merge: per-view detections of the same label fused into one object each.

Detections merge when their boxes overlap by at least ``min_overlap`` of the smaller box's volume
(REFERENCE §2: 0.30), most-overlapping pair first, refitting after every merge and iterating until
nothing merges. The instance ids in the masks are *not* used to decide: a real segmenter gives
labels per view, not ids that agree across views, so this is the realistic path (ids are carried
along only to evaluate against ground truth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from psfm.qa.boxes import overlap_of_smaller
from psfm.qa.lifting.fit import FittedBox


@dataclass
class Cluster:
    """Points of one object gathered from one or more views.

    Attributes:
        label: (colour, category) from the segmenter.
        points: [N, 3] gravity-frame points.
        fitted: the box fitted to ``points``.
        pixels: view index -> mask pixels the object covers there.
        source_ids: mask instance id -> points contributed (evaluation only).
    """

    label: tuple[str | None, str]
    points: np.ndarray
    fitted: FittedBox
    pixels: dict[int, int] = field(default_factory=dict)
    source_ids: Counter = field(default_factory=Counter)

    @property
    def majority_id(self) -> int:
        return self.source_ids.most_common(1)[0][0]


def merge_clusters(
    clusters: list[Cluster], refit: Callable[[Cluster, Cluster], Cluster | None], min_overlap: float = 0.3
) -> list[Cluster]:
    """Merge same-label clusters until no pair overlaps by ``min_overlap`` (of the smaller volume).

    Overlaps are cached per pair and recomputed only for the cluster a merge produces.
    """
    alive: dict[int, Cluster] = dict(enumerate(clusters))
    overlaps: dict[tuple[int, int], float] = {}

    def score(i: int, j: int) -> None:
        if alive[i].label == alive[j].label:
            overlap = overlap_of_smaller(alive[i].fitted.box, alive[j].fitted.box)
            if overlap >= min_overlap:
                overlaps[(i, j)] = overlap

    keys = sorted(alive)
    for a, i in enumerate(keys):
        for j in keys[a + 1 :]:
            score(i, j)
    next_key = len(clusters)
    while overlaps:
        i, j = max(overlaps, key=overlaps.get)
        merged = refit(alive[i], alive[j])
        if merged is None:  # the union has no box (cannot happen for valid inputs): stop merging this pair
            del overlaps[(i, j)]
            continue
        del alive[i], alive[j]
        overlaps = {pair: value for pair, value in overlaps.items() if i not in pair and j not in pair}
        alive[next_key] = merged
        for other in alive:
            if other != next_key:
                score(other, next_key)
        next_key += 1
    return list(alive.values())
