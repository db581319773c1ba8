"""Pose-noise augmentation: perturb normalized camera poses so training mimics *predicted* poses.

Spa3R never sees ground-truth poses, only a predictor's; training on the world's exact poses with
this noise keeps the decoder from trusting poses more than a real pipeline could.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from psfm.errors import UsageError


@dataclass
class PoseNoise:
    """Per-view Gaussian noise on views 1..V-1 (view 0 is the reference frame and stays exact).

    Attributes:
        rotation_deg: std of the rotation angle about a uniformly random axis, degrees.
        translation: std per axis of the translation offset, in normalized units (camera spread = 1).
    """

    rotation_deg: float = 0.0
    translation: float = 0.0

    def __post_init__(self) -> None:
        if self.rotation_deg < 0 or self.translation < 0:
            raise UsageError(f"pose_noise stds must be >= 0, got {self.rotation_deg}° / {self.translation}")

    @property
    def active(self) -> bool:
        return self.rotation_deg > 0 or self.translation > 0


def axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: rotation [3, 3] by ``angle`` radians about unit ``axis``."""
    x, y, z = axis
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def perturb_poses(cam_to_world: np.ndarray, noise: PoseNoise, rng: random.Random) -> np.ndarray:
    """[V, 4, 4] normalized camera-to-world -> a noisy copy; row 0 unchanged."""
    noisy = cam_to_world.copy()
    for view in range(1, len(noisy)):
        axis = np.array([rng.gauss(0, 1) for _ in range(3)])
        axis /= max(np.linalg.norm(axis), 1e-12)
        angle = math.radians(rng.gauss(0, noise.rotation_deg)) if noise.rotation_deg > 0 else 0.0
        noisy[view, :3, :3] = noisy[view, :3, :3] @ axis_angle_matrix(axis, angle)
        if noise.translation > 0:
            noisy[view, :3, 3] += np.array([rng.gauss(0, noise.translation) for _ in range(3)])
    return noisy
