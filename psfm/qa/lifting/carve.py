"""Silhouette and free-space carving of a lifted box, using every view, not only those that detected it.

A point of the box that some camera sees *through* (the pixel it projects to shows a surface
clearly farther away) is empty space, not part of the object, whatever that surface is. The box
is sampled on a grid, such samples are carved away, and the box's horizontal extent shrinks to
the surviving columns and its top down to the highest surviving level. Carving only shrinks: it
removes the inflation that noisy depth gives extreme-point fits, and a view that never detected
the object still bounds it through its silhouette. The bottom is kept (a table is mostly empty
under its top, yet stands on the floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psfm.worlds.scene import OrientedBox

MIN_MARGIN_M = 0.03
SUPPORT_BAND = 0.25  # lowest share of the box's height that does not vote on columns


@dataclass(frozen=True)
class CarvingView:
    """One view for carving, in the gravity frame.

    Attributes:
        depth: [H, W] metric depth used for the free-space test (smoothed when the view is noisy).
        margin: [H, W] metres a surface must lie beyond a sample before the sample counts as seen through.
        intrinsics: [3, 3].
        cam_to_world: [4, 4], gravity frame.
    """

    depth: np.ndarray
    margin: np.ndarray
    intrinsics: np.ndarray
    cam_to_world: np.ndarray


def median_filter(depth: np.ndarray, radius: int) -> np.ndarray:
    """Median of each (2r+1)² window (edge-replicated): denoises without smearing depth edges."""
    padded = np.pad(depth, radius, mode="edge")
    height, width = depth.shape
    size = 2 * radius + 1
    windows = [padded[dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)]
    return np.median(np.stack(windows), axis=0)


def carve_box(box: OrientedBox, views: list[CarvingView], cells: int = 12, levels: int = 12) -> OrientedBox:
    """The box shrunk to the grid columns and top level no view sees through.

    Args:
        box: the fitted box (gravity frame).
        views: every view of the scene.
        cells: grid columns per horizontal axis.
        levels: samples per column.
    """
    size = np.asarray(box.size, dtype=np.float64)
    steps = [(np.arange(n) + 0.5) / n - 0.5 for n in (cells, cells, levels)]
    local = np.stack(np.meshgrid(*steps, indexing="ij"), axis=-1).reshape(-1, 3) * size  # [C*C*L, 3]
    points = local @ box.rotation.T + np.asarray(box.center)
    alive = np.ones(len(points), dtype=bool)
    for view in views:
        camera = (points - view.cam_to_world[:3, 3]) @ view.cam_to_world[:3, :3]  # [N, 3]
        depth_of_sample = camera[:, 2]
        front = depth_of_sample > 0.05
        pixels = camera[front] @ view.intrinsics.T
        cols = np.floor(pixels[:, 0] / pixels[:, 2]).astype(np.int64)
        rows = np.floor(pixels[:, 1] / pixels[:, 2]).astype(np.int64)
        height, width = view.depth.shape
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        index = np.flatnonzero(front)[inside]
        rows, cols = rows[inside], cols[inside]
        seen = view.depth[rows, cols]
        through = seen > depth_of_sample[index] + view.margin[rows, cols]
        alive[index[through]] = False
    grid = alive.reshape(cells, cells, levels)
    # samples just above the supporting surface cannot be carved (it lies right behind them in every
    # view), so only the upper levels decide whether a column is empty
    columns = grid[:, :, int(SUPPORT_BAND * levels) :].any(axis=2)  # [C, C]
    if not columns.any():
        return box
    top_level = int(np.flatnonzero(grid[columns].any(axis=0))[-1])
    height = size[2] * (top_level + 1) / levels
    used_u, used_v = np.flatnonzero(columns.any(axis=1)), np.flatnonzero(columns.any(axis=0))
    low = (np.array([used_u[0], used_v[0]]) / cells - 0.5) * size[:2]
    high = (np.array([used_u[-1] + 1, used_v[-1] + 1]) / cells - 0.5) * size[:2]
    center_local = np.array([*(low + high) / 2, (height - size[2]) / 2])
    center = box.rotation @ center_local + np.asarray(box.center)
    return OrientedBox(tuple(center.tolist()), (*(high - low).tolist(), float(height)), box.yaw)
