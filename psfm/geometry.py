"""Camera geometry shared by the world, the loaders and (later) the models.

Conventions, written once (see ``docs/conventions.md``):

* World frame: metres, right-handed, z up (gravity along -z).
* Camera frame: OpenCV, x right, y down, z forward (optical axis).
* Poses are ``cam_to_world`` [4, 4]: ``X_world = R @ X_cam + t``.
* Pixel ``(u, v)`` has its centre at ``u + 0.5, v + 0.5``; ``K @ X_cam`` gives ``(u + 0.5, v + 0.5) * z``
  for the pixel whose centre the point projects to (pixel corner at the origin, like OpenCV's
  image-coordinate convention with continuous coordinates).
* Depth maps hold z-depth (distance along the optical axis), not ray length.
"""

from __future__ import annotations

import numpy as np


def intrinsics_from_fov(width: int, height: int, horizontal_fov_deg: float) -> np.ndarray:
    """Square-pixel intrinsics [3, 3] with the principal point at the image centre."""
    focal = 0.5 * width / np.tan(np.deg2rad(horizontal_fov_deg) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, roll_deg: float = 0.0) -> np.ndarray:
    """``cam_to_world`` [4, 4] of an OpenCV camera at ``eye`` looking at ``target`` with world z up.

    ``roll_deg`` turns the camera about its optical axis (a tilted handheld phone).
    """
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    if np.linalg.norm(right) < 1e-6:  # looking straight up or down: any horizontal right will do
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    roll = np.deg2rad(roll_deg)
    right, down = np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


def pixel_rays(intrinsics: np.ndarray, height: int, width: int) -> np.ndarray:
    """Camera-frame ray directions [H, W, 3] through pixel centres, scaled so that z = 1."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pixels = np.stack([u, v, np.ones_like(u)], axis=-1)
    return pixels @ np.linalg.inv(intrinsics).T


def backproject_pixels(
    rows: np.ndarray, cols: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray, cam_to_world: np.ndarray
) -> np.ndarray:
    """World points [N, 3] of the pixels (``rows``, ``cols``) [N] at z-depth ``depth`` [N].

    Pixel centres sit at +0.5, as in ``pixel_rays``; ``backproject`` does the same for a whole map.
    """
    pixels = np.column_stack([cols + 0.5, rows + 0.5, np.ones(len(rows))])
    cam = (pixels @ np.linalg.inv(intrinsics).T) * depth[:, None]
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def project(
    points_world: np.ndarray, intrinsics: np.ndarray, cam_to_world: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Project world points [N, 3] to continuous pixel coordinates [N, 2]; also returns z-depth [N]."""
    world_to_cam = np.linalg.inv(cam_to_world)
    cam = points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uvw = cam @ intrinsics.T
    return uvw[:, :2] / uvw[:, 2:3], cam[:, 2]


def backproject(depth: np.ndarray, intrinsics: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """World points [H, W, 3] of a z-depth map [H, W]."""
    rays = pixel_rays(intrinsics, *depth.shape)
    cam = rays * depth[..., None]
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
