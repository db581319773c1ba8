"""The per-view input of lifting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ViewInput:
    """One view: ``depth`` [H, W] metres (0 = unknown), ``mask`` [H, W] instance ids (0 = room structure),
    ``intrinsics`` [3, 3] pixels, ``cam_to_world`` [4, 4] OpenCV in any metric frame (gravity unknown)."""

    depth: np.ndarray
    mask: np.ndarray
    intrinsics: np.ndarray
    cam_to_world: np.ndarray


def camera_up(cam_to_world: np.ndarray) -> np.ndarray:
    """The camera's up direction in its frame's coordinates: OpenCV's y points down, so up is -y."""
    return -cam_to_world[:3, 1]
