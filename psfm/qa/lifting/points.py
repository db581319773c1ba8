"""From one view's depth and instance mask to a clean point cloud per object.

Order matters: drop flying pixels (depth between two surfaces), then the mask's boundary pixels whose
depth leaves the object's surface (a depth-checked erosion), back-project, and finally trim outliers
with the median absolute deviation (MAD) of depth and of distance to the median point. MAD and not a
fixed percentile: trimming "the worst 10 %" always removes the true extremes too and shrinks every box.

Every depth test allows for the view's own noise (``jump_tolerance``): a fixed 5 % jump test on depth
with 5 % noise flags four pixels in ten as flying.
"""

from __future__ import annotations

import numpy as np

from psfm.geometry import backproject_pixels

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
NOISY_DEPTH = 0.005  # relative noise above which depth is smoothed within masks
NOISE_SIGMAS = 3.0  # a depth difference noise alone gives this rarely (1 in 370) marks an edge


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion of ``mask`` [H, W] by a (2r+1)² square; pixels outside the image count as background."""
    if radius <= 0:
        return mask.copy()
    padded = np.pad(mask, radius, constant_values=False)
    height, width = mask.shape
    out = np.ones_like(mask, dtype=bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out &= padded[dy : dy + height, dx : dx + width]
    return out


def jump_tolerance(flying_jump: float, noise: float) -> float:
    """Relative depth difference between two neighbours that the view's noise does not explain.

    Two pixels with i.i.d. relative noise ``noise`` differ by ``sqrt(2) x noise`` (1 sigma); a jump
    test tighter than ``NOISE_SIGMAS`` of that mistakes noise for edges.
    """
    return max(flying_jump, NOISE_SIGMAS * float(np.sqrt(2.0)) * noise)


def flying_pixels(depth: np.ndarray, relative_jump: float) -> np.ndarray:
    """Pixels [H, W] whose depth differs from *both* neighbours along a row or a column by > ``relative_jump``.

    A flying pixel lies between a foreground and a background surface, so it disagrees with both
    sides; a pixel on a genuine depth edge agrees with the side it belongs to and is kept.
    """
    flying = np.zeros(depth.shape, dtype=bool)
    tolerance = relative_jump * depth
    for axis in (0, 1):
        before = np.roll(depth, 1, axis=axis)
        after = np.roll(depth, -1, axis=axis)
        jump = (np.abs(depth - before) > tolerance) & (np.abs(depth - after) > tolerance)
        edge = [slice(None)] * 2
        for index in (0, -1):  # np.roll wraps around: the first and last row/column have one neighbour only
            edge[axis] = index
            jump[tuple(edge)] = False
        flying |= jump
    return flying


def _middle(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of each row of ``values`` [K, M] over its ``valid`` entries (NaN where a row has none)."""
    count = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, values, np.inf), axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.maximum((count - 1) // 2, 0)]
    high = ordered[rows, np.maximum(count // 2, 0)]
    return np.where(count > 0, (low + high) / 2, np.nan)


def inconsistent_boundary(depth: np.ndarray, mask: np.ndarray, radius: int, tolerance: float) -> np.ndarray:
    """Pixels [H, W] within ``radius`` of the mask's edge whose depth leaves the object's surface beside them.

    A boundary pixel is where mask and depth disagree: a flying pixel mixes the object with what
    lies behind it, a segmenter's mask bleeds onto the background. Either way its depth departs from
    the object's own surface, which its inner neighbours show: it is dropped when it differs by more
    than ``tolerance`` (relative) from the median of the interior mask pixels in its (2r+1)² window,
    or of all its mask neighbours where none is interior (a 2-pixel table leg or top rim). A blind
    erosion drops every boundary pixel instead, which at 128 px is most of a small object (a 6 x 10
    pixel vase loses 60 % of its pixels) and all of a thin part, although on a clean depth map none
    of them is wrong.

    On noisy depth a thin part can only be checked against itself, and its flying pixels may agree
    within the (noise-wide) tolerance. Dropping such parts outright loses far tables and small
    objects whole (rim and legs are all edge): at 128 px with 5 % noise, answer agreement fell from
    90.7 % to 87.2 % for the same IoU, so they are kept and the within-mask smoothing averages them.
    """
    if radius <= 0:
        return np.zeros_like(mask, dtype=bool)
    interior = erode(mask, radius)
    rows, cols = np.nonzero(mask & ~interior)
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1) if dy or dx]
    padded = [np.pad(a, radius) for a in (depth, mask & (depth > 0), interior & (depth > 0))]
    gathered = [np.stack([a[rows + radius + dy, cols + radius + dx] for dy, dx in offsets], axis=1) for a in padded]
    values, in_mask, in_interior = gathered  # [K, (2r+1)² - 1] each
    reference = _middle(values, in_interior)
    reference = np.where(np.isnan(reference), _middle(values, in_mask), reference)
    own = depth[rows, cols]
    with np.errstate(invalid="ignore"):
        agrees = np.abs(own - reference) <= tolerance * reference
    out = np.zeros_like(mask, dtype=bool)
    out[rows[~agrees], cols[~agrees]] = True  # no reference (NaN) counts as disagreeing
    return out


def _box_sum(image: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)² window around every pixel (zero padding), via an integral image."""
    padded = np.pad(image, ((radius + 1, radius), (radius + 1, radius)))
    integral = padded.cumsum(0).cumsum(1)
    size = 2 * radius + 1
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


def smooth_within_mask(depth: np.ndarray, mask: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the valid depths of ``mask`` in each (2r+1)² window, and how many were averaged [H, W].

    Noise averaging that never crosses the object's boundary into another surface.
    """
    valid = (mask & (depth > 0)).astype(np.float64)
    if radius <= 0:
        return depth, valid
    total = _box_sum(depth * valid, radius)
    count = _box_sum(valid, radius)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0), count


def relative_noise(depth: np.ndarray, valid: np.ndarray) -> float:
    """Robust estimate of per-pixel multiplicative depth noise (a standard deviation, e.g. 0.05 = 5 %).

    The second difference along rows, ``d[x] - (d[x-1] + d[x+1]) / 2``, cancels planes and slopes,
    so on clean depth it is ~0 except at edges; on i.i.d. noise of sigma it has a standard deviation
    of sigma x sqrt(1.5). The MAD ignores the edges.
    """
    center, left, right = depth[:, 1:-1], depth[:, :-2], depth[:, 2:]
    usable = valid[:, 1:-1] & valid[:, :-2] & valid[:, 2:]
    if usable.sum() < 100:
        return 0.0
    second = (center - (left + right) / 2)[usable] / center[usable]
    return float(MAD_TO_SIGMA * np.median(np.abs(second - np.median(second))) / np.sqrt(1.5))


def mad_inliers(values: np.ndarray, threshold: float, floor: float) -> np.ndarray:
    """Boolean [N]: ``|v - median| <= threshold * max(1.4826 * MAD, floor)``."""
    median = np.median(values)
    spread = max(MAD_TO_SIGMA * float(np.median(np.abs(values - median))), floor)
    return np.abs(values - median) <= threshold * spread


def object_points(
    depth: np.ndarray,
    mask: np.ndarray,
    intrinsics: np.ndarray,
    cam_to_world: np.ndarray,
    erosion_px: int,
    flying_jump: float,
    mad_threshold: float,
    min_points: int,
    smoothing_px: int = 0,
    noise: float = 0.0,
) -> tuple[np.ndarray | None, str]:
    """Clean world points [N, 3] of one object in one view, or ``(None, reason)``.

    Args:
        depth: [H, W] metric z-depth, 0 = unknown.
        mask: [H, W] bool, the object's pixels.
        intrinsics, cam_to_world: the view's camera ([3, 3], [4, 4]).
        erosion_px: width of the boundary band whose depth is checked against the surface beside it.
        flying_jump: relative depth jump that marks a flying pixel on noise-free depth.
        mad_threshold: outlier cut in robust standard deviations.
        min_points: fewer surviving points than this and the detection is dropped.
        smoothing_px: radius of the within-mask mean filter, applied only when ``noise`` says the
            depth is noisy (averaging clean depth only blurs it).
        noise: the view's relative depth noise (``relative_noise``).
    """
    tolerance = jump_tolerance(flying_jump, noise)
    keep = mask & (depth > 0) & ~flying_pixels(depth, tolerance)
    keep &= ~inconsistent_boundary(depth, keep, erosion_px, tolerance)
    radius = smoothing_px if noise > NOISY_DEPTH else 0
    depth, _ = smooth_within_mask(depth, keep, radius)
    if keep.sum() < min_points:
        return None, "too_few_points"
    values = depth[keep]
    keep[keep] = mad_inliers(values, mad_threshold, floor=0.01 * float(np.median(values)))
    rows, cols = np.nonzero(keep)
    points = backproject_pixels(rows, cols, depth[rows, cols], intrinsics, cam_to_world)  # [N, 3]
    distances = np.linalg.norm(points - np.median(points, axis=0), axis=1)
    inliers = mad_inliers(distances, mad_threshold, floor=0.01)
    if inliers.sum() < min_points:
        return None, "too_few_points"
    return points[inliers], ""
