"""How much of a candidate target view the context views see: the score behind ``views.target_overlap``.

A target the context never saw (a camera turned away, a wall in another room) can only be guessed,
so its loss teaches the encoder little and adds noise. The score is cheap on purpose: numpy, a
``grid × grid`` lattice of patch-centre rays per candidate, no image decoded. Each ray is cut at
one z-depth (the scene's typical depth when depth maps are loaded, else ``views.overlap_depth``)
and counts as seen when that point lies in front of some context camera and inside its image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psfm.datamodules.format import SceneMeta


@dataclass(frozen=True)
class SceneCameras:
    """The stored cameras of every view of one scene, at the stored image size.

    Attributes:
        intrinsics: [S, 3, 3] pixels.
        cam_to_world: [S, 4, 4] OpenCV camera-to-world, in the shard's pose units.
        image_size: (H, W) of the stored images.
    """

    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    image_size: tuple[int, int]

    @classmethod
    def from_meta(cls, meta: SceneMeta) -> SceneCameras | None:
        """The scene's cameras, or None when it has no poses (``pose_source: none``)."""
        if meta.pose_source == "none" or any(view.cam_to_world is None for view in meta.views):
            return None
        return cls(
            np.array([view.intrinsics for view in meta.views], dtype=np.float64),
            np.array([view.cam_to_world for view in meta.views], dtype=np.float64),
            tuple(meta.image_size),
        )


def overlap_scores(
    cameras: SceneCameras,
    candidates: list[int],
    context: list[int],
    depth: float,
    grid: int = 8,
    hidden_from: list[int] | None = None,
) -> np.ndarray:
    """Fraction [K] of each candidate's patch-centre rays, cut at z-depth ``depth``, that some context view sees.

    With ``hidden_from``, a ray counts only if none of those views sees it either: the share of a
    candidate that ``context`` shows and ``hidden_from`` cannot (``views.target_overlap_from=others``).
    """
    height, width = cameras.image_size
    cols, rows = np.meshgrid((np.arange(grid) + 0.5) * width / grid, (np.arange(grid) + 0.5) * height / grid)
    pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1).reshape(-1, 3)  # G 3
    rays = np.einsum("kij,gj->kgi", np.linalg.inv(cameras.intrinsics[candidates]), pixels)  # K G 3, z = 1
    poses = cameras.cam_to_world[candidates]
    points = np.einsum("kij,kgj->kgi", poses[:, :3, :3], rays * depth) + poses[:, None, :3, 3]  # K G 3, world
    seen = _seen_by(cameras, points, context)
    if hidden_from:
        seen &= ~_seen_by(cameras, points, hidden_from)
    return seen.mean(axis=-1)


def _seen_by(cameras: SceneCameras, points: np.ndarray, views: list[int]) -> np.ndarray:
    """[K, G] whether some view of ``views`` sees each world point [K, G, 3] (in front, inside its image)."""
    height, width = cameras.image_size
    world_to_view = np.linalg.inv(cameras.cam_to_world[views])  # C 4 4
    in_view = np.einsum("cij,kgj->ckgi", world_to_view[:, :3, :3], points) + world_to_view[:, None, None, :3, 3]
    projected = np.einsum("cij,ckgj->ckgi", cameras.intrinsics[views], in_view)  # C K G 3
    z = in_view[..., 2]
    in_front = z > 1e-6
    safe_z = np.where(in_front, projected[..., 2], 1.0)
    u, v = projected[..., 0] / safe_z, projected[..., 1] / safe_z
    seen = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return seen.any(axis=0)
