"""The viewer frame of egocentric questions ("to the left of", "in front of"), built from a camera.

Axes (REFERENCE §2): x = the camera's right projected onto the horizontal plane, y = its forward
projected, z = up; origin at the camera centre. Rows of the returned rotation are those axes, so
``R @ (p - c)`` gives viewer coordinates and ``x × y = z`` (right-handed). A camera looking almost
straight down has no meaningful horizontal forward; such views are refused rather than guessed.
"""

from __future__ import annotations

import numpy as np

MAX_FORWARD_ELEVATION_DEG = 70.0  # beyond this pitch, "in front of" is ill-defined for a viewer


def viewer_rotation(cam_to_world: np.ndarray) -> np.ndarray | None:
    """Rows (right, forward, up) [3, 3] of the viewer frame, or None when the camera looks (nearly) vertically."""
    forward = cam_to_world[:3, 2]
    if abs(forward[2]) > np.sin(np.deg2rad(MAX_FORWARD_ELEVATION_DEG)):
        return None
    forward_h = np.array([forward[0], forward[1], 0.0])
    forward_h /= np.linalg.norm(forward_h)
    up = np.array([0.0, 0.0, 1.0])
    right_h = np.cross(forward_h, up)  # forward x up points right for a z-up, right-handed frame
    return np.stack([right_h, forward_h, up])


def to_camera(points: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """Points [N, 3] (world) in the OpenCV camera frame (x right, y down, z forward)."""
    rotation, center = cam_to_world[:3, :3], cam_to_world[:3, 3]
    return (np.asarray(points, dtype=np.float64) - center) @ rotation
