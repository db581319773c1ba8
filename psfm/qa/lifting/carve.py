"""Silhouette and free-space carving of a lifted box, using every view, not only those that detected it.

The box is sampled on a grid, and a sample is carved away when some camera shows it is not part of
the object:

* free space: the pixel it projects to shows a surface clearly *farther* away (the camera sees
  through it), whatever that surface is;
* silhouette: the pixel shows something *else* (the room, or a surface labelled otherwise) that is
  not clearly in front of the sample, so nothing hides the object there and it would have been seen.

The box's horizontal extent then shrinks to the columns with a surviving sample and its top down to
the highest surviving level. Carving only shrinks: it removes the inflation that noisy depth gives
extreme-point fits (the silhouette test does not read depth across the object's outline at all), and
a view that never detected the object still bounds it. The bottom is kept (a table is mostly empty
under its top, yet stands on the floor).

Free space alone cannot carve next to a supporting surface: the floor lies right behind a sample
just above it, within the noise margin, in every view. Without the silhouette test every column
would survive through its lowest samples; excluding those samples from the vote instead (an earlier
rule) carves every column that is only occupied low down, so a cone lost the outer quarter of its
base, 0.86 -> 0.55 mean IoU at 128 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psfm.worlds.scene import OrientedBox

MIN_MARGIN_M = 0.03
ROOM = 0  # label code of room structure (mask 0)


@dataclass(frozen=True)
class CarvingView:
    """One view for carving, in the gravity frame.

    Attributes:
        depth: [H, W] metric depth used for the free-space test (smoothed when the view is noisy).
        margin: [H, W] metres a surface must lie beyond a sample before the sample counts as seen
            through (and in front of it before it counts as hiding the sample).
        intrinsics: [3, 3].
        cam_to_world: [4, 4], gravity frame.
        labels: [H, W] int code of the label each pixel shows (``ROOM`` for structure, -1 unnamed).
    """

    depth: np.ndarray
    margin: np.ndarray
    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    labels: np.ndarray


def median_filter(depth: np.ndarray, radius: int) -> np.ndarray:
    """Median of each (2r+1)² window (edge-replicated): denoises without smearing depth edges."""
    padded = np.pad(depth, radius, mode="edge")
    height, width = depth.shape
    size = 2 * radius + 1
    windows = [padded[dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)]
    return np.median(np.stack(windows), axis=0)


def carve_box(box: OrientedBox, label: int, views: list[CarvingView], cells: int = 12, levels: int = 12) -> OrientedBox:
    """The box shrunk to the grid columns and top level that no view shows to be empty or something else.

    Args:
        box: the fitted box (gravity frame).
        label: the object's label code in ``CarvingView.labels``.
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
        seen, margin = view.depth[rows, cols], view.margin[rows, cols]
        through = seen > depth_of_sample[index] + margin
        elsewhere = (view.labels[rows, cols] != label) & (seen > depth_of_sample[index] - margin)
        alive[index[through | elsewhere]] = False
    grid = alive.reshape(cells, cells, levels)
    columns = grid.any(axis=2)  # [C, C]
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
