"""Confidence gating of lifted objects: keep the sure ones, drop the unsure, verify the rest.

Confidence (0..1) grows with evidence: points, views, and how much of the footprint rectangle the
points' footprint fills.
Objects between ``drop_confidence`` and ``keep_confidence`` are kept only if they pass
verification: the box must rest on the floor or on another kept box (within ``SUPPORT_GAP_M``)
and must not sink into another box by more than ``MAX_INTERPENETRATION`` of its volume.
"""

from __future__ import annotations

import numpy as np

from psfm.qa.boxes import bottom, box_volume, footprint_overlap, intersection_volume, top
from psfm.qa.lifting.config import LiftingConfig
from psfm.qa.lifting.merge import Cluster
from psfm.qa.polygons import convex_hull, polygon_area
from psfm.qa.reasons import SkipLog

SUPPORT_GAP_M = 0.1
MAX_INTERPENETRATION = 0.2
POINTS_FOR_FULL_CONFIDENCE = 300


def confidence(cluster: Cluster) -> float:
    """Evidence score in [0, 1]: point support x view support x footprint shape.

    Calibrated on 20 world val scenes (round-yaw-free 3D IoU, clean depth): objects scoring under
    0.75 had a mean IoU of 0.27 (128 px, 3 objects) / 0.01 (256 px, 1 object), between 0.75 and 0.9
    0.86 / 0.77, over 0.9 0.92 / 0.93; with 5 % depth noise at 128 px 0.36 / 0.50 / 0.56.
    Terms: ``log(points) / log(300)`` (square-rooted, capped at 1),
    ``0.75 + 0.1 x views`` (capped at 1), and for rectangles ``0.5 + fill`` (capped at 1) where
    fill is the points' footprint area over the rectangle's: a lone face seen edge-on fills nothing.
    Circles are exempt from the fill term, since a half-seen round object fills half by design.
    """
    evidence = min(1.0, np.log(max(len(cluster.points), 1)) / np.log(POINTS_FOR_FULL_CONFIDENCE))
    views = min(1.0, 0.75 + 0.1 * len(cluster.pixels))
    box = cluster.fitted.box
    shape = 1.0
    if cluster.fitted.method != "circle":
        hull_area = abs(polygon_area(convex_hull(cluster.points[:, :2], grid=0.005)))
        shape = min(1.0, 0.5 + hull_area / max(box.size[0] * box.size[1], 1e-9))
    return float(np.sqrt(evidence) * views * shape)


def _plausible(cluster: Cluster, others: list[Cluster]) -> bool:
    box = cluster.fitted.box
    supported = bottom(box) < SUPPORT_GAP_M or any(
        abs(bottom(box) - top(o.fitted.box)) < SUPPORT_GAP_M and footprint_overlap(box, o.fitted.box) > 0
        for o in others
    )
    sinking = max((intersection_volume(box, o.fitted.box) for o in others), default=0.0)
    return supported and sinking <= MAX_INTERPENETRATION * box_volume(box)


def gate(clusters: list[Cluster], config: LiftingConfig, skips: SkipLog) -> list[tuple[Cluster, float]]:
    """The clusters that survive, each with its confidence; drops are counted by reason."""
    scored = [(cluster, confidence(cluster)) for cluster in clusters if len(cluster.points) >= config.min_points]
    skips.add("lifting/object_too_few_points", count=len(clusters) - len(scored))
    sure = [(c, s) for c, s in scored if s >= config.keep_confidence]
    unsure = [(c, s) for c, s in scored if config.drop_confidence <= s < config.keep_confidence]
    skips.add("lifting/object_low_confidence", count=sum(s < config.drop_confidence for _, s in scored))
    kept = list(sure)
    for cluster, score in unsure:
        others = [c for c, _ in kept] + [c for c, _ in unsure if c is not cluster]
        if _plausible(cluster, others):
            kept.append((cluster, score))
        else:
            skips.add("lifting/object_failed_verification")
    return kept
