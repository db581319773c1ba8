"""Knobs of lifting (REFERENCE §2 values where it gives them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LiftingConfig:
    """How depth + masks + cameras become boxes.

    Attributes:
        erosion_px: width of the mask's boundary band whose pixels must agree in depth with the
            object's surface beside them (boundary pixels may mix surfaces); a depth-checked
            erosion, not a blind one (``points.inconsistent_boundary``).
        flying_jump: relative depth jump to both neighbours that marks a flying pixel on noise-free
            depth; every depth test widens it to what the view's measured noise explains.
        smoothing_px: radius of a mean filter applied to depth *within* each object's mask when the
            view's estimated noise is above 0.5 % (0 = never); averages out per-pixel sensor noise
            without mixing in other surfaces.
        mad_threshold: outlier cut, in robust standard deviations (MAD x 1.4826).
        min_points: an object (all its views together) needs at least this many points.
        min_detection_points: a single view's detection needs at least this many to take part.
        merge_overlap: intersection / smaller volume above which same-label detections merge.
        floor_threshold: RANSAC inlier distance to the floor plane, metres.
        floor_samples: room-structure points sampled for RANSAC.
        ransac_iterations: RANSAC hypotheses.
        max_tilt_deg: the floor normal must lie within this of the cameras' mean up.
        floor_snap: bottoms closer than this to the floor are extended to it, metres.
        carve: shrink boxes to what no view shows to be empty or something else (free space and
            labelled silhouettes).
        keep_confidence / drop_confidence: gate; in between, an object must pass verification.
        seed: RANSAC and subsampling seed.
    """

    erosion_px: int = 1
    flying_jump: float = 0.05
    smoothing_px: int = 3
    mad_threshold: float = 3.0
    min_points: int = 30
    min_detection_points: int = 8
    merge_overlap: float = 0.3
    floor_threshold: float = 0.03
    floor_samples: int = 20000
    ransac_iterations: int = 300
    max_tilt_deg: float = 45.0
    floor_snap: float = 0.1
    carve: bool = True
    keep_confidence: float = 0.9
    drop_confidence: float = 0.75
    seed: int = 0
