"""A depth corruption model for measuring lifting robustness: multiplicative noise plus flying pixels.

Flying pixels are what time-of-flight and stereo sensors (and monocular networks, which blur edges)
produce at depth discontinuities: a pixel next to an edge gets a depth between the two surfaces.
"""

from __future__ import annotations

import numpy as np

EDGE_JUMP = 0.1  # a relative depth step above this between neighbours is a depth edge


def depth_edges(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [H, W] on a depth edge and, for each, the depth across the edge (its neighbour's)."""
    edge = np.zeros(depth.shape, dtype=bool)
    across = depth.copy()
    for axis in (0, 1):
        for shift in (1, -1):
            neighbour = np.roll(depth, shift, axis=axis)
            jump = np.abs(depth - neighbour) > EDGE_JUMP * np.minimum(depth, neighbour)
            border = [slice(None)] * 2
            border[axis] = 0 if shift == 1 else -1
            jump[tuple(border)] = False
            new = jump & ~edge
            across[new] = neighbour[new]
            edge |= jump
    return edge, across


def corrupt_depth(
    depth: np.ndarray, rng: np.random.Generator, relative_sigma: float = 0.05, flying_fraction: float = 1.0
) -> np.ndarray:
    """``depth`` [H, W] times (1 + N(0, relative_sigma²)) per pixel, with edge pixels mixed across the edge.

    Args:
        depth: metric z-depth (0 = unknown stays 0).
        rng: noise source.
        relative_sigma: standard deviation of the multiplicative noise (0.05 = 5 %).
        flying_fraction: share of edge pixels that become flying pixels.
    """
    noisy = depth * (1.0 + relative_sigma * rng.standard_normal(depth.shape))
    edge, across = depth_edges(depth)
    flying = edge & (rng.random(depth.shape) < flying_fraction)
    mix = rng.random(depth.shape)
    noisy[flying] = (mix * depth + (1 - mix) * across)[flying]
    noisy[depth <= 0] = 0.0
    return np.maximum(noisy, 0.0).astype(np.float32)
