"""Lifting: views (depth + instance masks + cameras) -> gravity-aligned, metric ``SceneFacts``.

    floor RANSAC on room-structure points -> gravity frame (z up, floor z = 0)
    per view, per instance: drop flying pixels -> drop boundary pixels off the object's surface (a
        depth-checked erosion) -> smooth within the mask if noisy -> back-project -> MAD trim
        -> >= min points -> box (every depth test widened to the view's measured noise)
    merge same-label detections across views (overlap of smaller >= 0.3, iterated) -> refit
    carve each box with every view's free space and labelled silhouettes (psfm.qa.lifting.carve)
    confidence gate (keep >= 0.9, drop < 0.75, verify in between) -> ObjectFacts

A scene without a plausible floor is refused (no gravity, no "above", no heights) rather than
answered in a tilted frame. Labels (colour, category) come from the caller, as a segmenter's would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from psfm.geometry import backproject
from psfm.qa.facts import LIFTED, CameraFact, ObjectFact, SceneFacts
from psfm.qa.lifting.carve import MIN_MARGIN_M, ROOM, CarvingView, carve_box, median_filter
from psfm.qa.lifting.confidence import gate
from psfm.qa.lifting.config import LiftingConfig
from psfm.qa.lifting.fit import FittedBox, fit_box
from psfm.qa.lifting.gravity import fit_floor, floor_transform
from psfm.qa.lifting.merge import Cluster, merge_clusters
from psfm.qa.lifting.points import (
    NOISY_DEPTH,
    flying_pixels,
    jump_tolerance,
    object_points,
    relative_noise,
    smooth_within_mask,
)
from psfm.qa.lifting.room import room_footprint
from psfm.qa.lifting.views import ViewInput, camera_up
from psfm.qa.reasons import SkipLog

Label = tuple[str | None, str]
CARVING_SMOOTHING_PX = 2


def _apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ transform[:3, :3].T + transform[:3, 3]


def _structure_points(
    views: Sequence[ViewInput], config: LiftingConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Room-structure points (mask 0: floor, walls) [N, 3] in the input frame, subsampled to
    ``floor_samples``, the view each comes from [N], and their remaining noise (metres, 1 sigma,
    median): noisy views are mean-filtered within the structure mask first, as objects are."""
    per_view, sigmas, ids = [], [], []
    for index, view in enumerate(views):
        noise = relative_noise(view.depth, view.depth > 0)
        flying = flying_pixels(view.depth, jump_tolerance(config.flying_jump, noise))
        keep = (view.mask == 0) & (view.depth > 0) & ~flying
        radius = config.smoothing_px if noise > NOISY_DEPTH else 0
        depth, averaged = smooth_within_mask(view.depth, keep, radius)
        per_view.append(backproject(depth, view.intrinsics, view.cam_to_world)[keep])
        sigmas.append((noise * depth / np.sqrt(np.maximum(averaged, 1)))[keep])
        ids.append(np.full(int(keep.sum()), index))
    points = np.concatenate(per_view) if per_view else np.zeros((0, 3))
    sigma = np.concatenate(sigmas) if sigmas else np.zeros(0)
    view_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    if len(points) > config.floor_samples:
        chosen = rng.choice(len(points), config.floor_samples, replace=False)
        points, sigma, view_ids = points[chosen], sigma[chosen], view_ids[chosen]
    return points, view_ids, float(np.median(sigma)) if len(sigma) else 0.0


class _Fitter:
    """Fits boxes with the floor snap of ``config`` (shared by detection and merge)."""

    def __init__(self, config: LiftingConfig):
        self.config = config

    def cluster(self, label: Label, points: np.ndarray, pixels: dict, ids: Counter) -> Cluster | None:
        fitted = fit_box(points, floor_snap=self.config.floor_snap)
        return None if fitted is None else Cluster(label, points, fitted, pixels, ids)

    def merge(self, a: Cluster, b: Cluster) -> Cluster | None:
        pixels = Counter(a.pixels)
        pixels.update(b.pixels)
        return self.cluster(
            a.label,
            np.concatenate([a.points, b.points]),
            dict(pixels),
            a.source_ids + b.source_ids,
        )


def _detections(
    views: Sequence[ViewInput],
    labels: Mapping[int, Label],
    to_gravity: np.ndarray,
    config: LiftingConfig,
    skips: SkipLog,
) -> list[Cluster]:
    fitter, clusters = _Fitter(config), []
    for index, view in enumerate(views):
        noise = relative_noise(view.depth, view.depth > 0)
        for instance_id in np.unique(view.mask):
            if instance_id == 0:
                continue
            if int(instance_id) not in labels:
                skips.add("lifting/unlabelled_instance")
                continue
            mask = view.mask == instance_id
            found, reason = object_points(
                view.depth,
                mask,
                view.intrinsics,
                view.cam_to_world,
                config.erosion_px,
                config.flying_jump,
                config.mad_threshold,
                config.min_detection_points,
                config.smoothing_px,
                noise,
            )
            if found is None:
                skips.add(f"lifting/detection_{reason}")
                continue
            cluster = fitter.cluster(
                labels[int(instance_id)],
                _apply(to_gravity, found),
                {index: int(mask.sum())},
                Counter({int(instance_id): len(found)}),
            )
            if cluster is None:
                skips.add("lifting/detection_degenerate_box")
            else:
                clusters.append(cluster)
    return merge_clusters(clusters, fitter.merge, config.merge_overlap)


def _carving_views(
    views: Sequence[ViewInput], codes: Mapping[int, int], to_gravity: np.ndarray, config: LiftingConfig
) -> list[CarvingView]:
    """Per view: the depth to test against (median-filtered when noisy), the margin its noise calls
    for, and the label code of every pixel (``codes``: mask id -> code; unnamed ids get -1)."""
    carving = []
    for view in views:
        lookup = np.full(int(view.mask.max()) + 1, -1, dtype=np.int64)
        lookup[0] = ROOM
        for instance_id, code in codes.items():
            if instance_id < len(lookup):
                lookup[instance_id] = code
        noise = relative_noise(view.depth, view.depth > 0)
        depth, averaged = view.depth, 1
        if noise > NOISY_DEPTH and config.smoothing_px > 0:
            depth, averaged = median_filter(view.depth, CARVING_SMOOTHING_PX), (2 * CARVING_SMOOTHING_PX + 1) ** 2
        # a median of n samples has about 1.25 / sqrt(n) of one sample's spread
        margin = MIN_MARGIN_M + 3.0 * noise * depth * (1.25 if averaged > 1 else 1.0) / np.sqrt(averaged)
        carving.append(CarvingView(depth, margin, view.intrinsics, to_gravity @ view.cam_to_world, lookup[view.mask]))
    return carving


def _carve(
    clusters: list[Cluster],
    views: Sequence[ViewInput],
    labels: Mapping[int, Label],
    to_gravity: np.ndarray,
    config: LiftingConfig,
) -> list[Cluster]:
    label_codes = {label: code for code, label in enumerate(sorted(set(labels.values()), key=str), start=ROOM + 1)}
    carving = _carving_views(views, {i: label_codes[label] for i, label in labels.items()}, to_gravity, config)
    return [
        replace(
            cluster,
            fitted=FittedBox(carve_box(cluster.fitted.box, label_codes[cluster.label], carving), cluster.fitted.method),
        )
        for cluster in clusters
    ]


def lift_scene(
    scene_id: str,
    views: Sequence[ViewInput],
    labels: Mapping[int, Label],
    config: LiftingConfig,
    metric_scale: str,
    skips: SkipLog,
) -> SceneFacts | None:
    """Estimate a scene's facts from its views; None (with the reason counted) when it cannot be done.

    Args:
        scene_id: for messages and the facts.
        views: the views, in capture order.
        labels: mask instance id -> (colour, category) as a segmenter would name it.
        config: lifting knobs.
        metric_scale: where the depth's metres come from (``sensor_depth``, ``gt``, ``depth_model:<name>``);
            ``none`` is refused: boxes in unknown units would make every numeric answer wrong.
        skips: where dropped detections, objects and scenes are counted.
    """
    if metric_scale == "none":
        skips.add("lifting/no_metric_scale", scene_id)
        return None
    rng = np.random.default_rng(config.seed)
    structure, structure_views, structure_noise = _structure_points(views, config, rng)
    centers = np.array([view.cam_to_world[:3, 3] for view in views])
    ups = np.array([camera_up(view.cam_to_world) for view in views])
    threshold = max(config.floor_threshold, 2.0 * structure_noise)
    floor = fit_floor(
        structure, centers, ups, rng, config.ransac_iterations, threshold, config.max_tilt_deg, view_ids=structure_views
    )
    if floor is None:
        skips.add("lifting/no_floor", scene_id)
        return None
    to_gravity = floor_transform(floor)
    clusters = _detections(views, labels, to_gravity, config, skips)
    if config.carve:
        clusters = _carve(clusters, views, labels, to_gravity, config)
    kept = gate(clusters, config, skips)
    objects = tuple(
        ObjectFact(
            instance_id=cluster.majority_id,
            category=cluster.label[1],
            color=cluster.label[0],
            box=cluster.fitted.box,
            supported_by=None,
            confidence=confidence,
            pixels_per_view=tuple(cluster.pixels.get(v, 0) for v in range(len(views))),
        )
        for cluster, confidence in kept
    )
    cameras = tuple(
        CameraFact(view.intrinsics, to_gravity @ view.cam_to_world, view.depth.shape[0], view.depth.shape[1])
        for view in views
    )
    footprint = room_footprint(_apply(to_gravity, structure))
    return SceneFacts(
        scene_id,
        objects,
        cameras,
        footprint,
        LIFTED,
        metric_scale,
        depths=tuple(view.depth for view in views),
        masks=tuple(view.mask for view in views),
        floor_source="lifting",  # the RANSAC floor, moved to z = 0
        room_source="lifting" if footprint is not None else "none",
    )
