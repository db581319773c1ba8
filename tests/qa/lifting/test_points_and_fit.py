"""Point cleaning (erosion, flying pixels, MAD, noise estimate) and box fitting (rectangle, circle, PCA)."""

from __future__ import annotations

import numpy as np
import pytest

from psfm.qa.boxes import iou_3d
from psfm.qa.lifting.fit import fit_box
from psfm.qa.lifting.points import erode, flying_pixels, mad_inliers, relative_noise, smooth_within_mask
from psfm.worlds.scene import OrientedBox


def test_erosion_removes_the_boundary_and_the_image_border():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    eroded = erode(mask, 1)
    assert eroded.sum() == 9 and eroded[2:5, 2:5].all()
    assert not erode(np.ones((3, 3), dtype=bool), 1)[0].any()


def test_flying_pixels_sit_between_two_surfaces_edges_do_not():
    depth = np.full((5, 9), 2.0)
    depth[:, 5:] = 4.0  # a clean step edge
    assert not flying_pixels(depth, 0.05).any()
    depth[2, 4] = 3.0  # a pixel halfway across the edge
    flying = flying_pixels(depth, 0.05)
    assert flying[2, 4] and flying.sum() == 1


def test_mad_trims_outliers_only():
    values = np.concatenate([np.random.default_rng(0).normal(1.0, 0.01, 200), [1.5, 3.0]])
    keep = mad_inliers(values, 3.0, floor=0.0)
    assert not keep[-2:].any() and keep[:200].mean() > 0.97


def test_noise_estimate_and_smoothing_within_a_mask():
    rng = np.random.default_rng(0)
    ramp = 2.0 + np.linspace(0, 1, 64)[None, :] * np.ones((48, 1))  # a slanted plane: no noise in it
    assert relative_noise(ramp, ramp > 0) < 1e-3
    noisy = ramp * (1 + 0.05 * rng.standard_normal(ramp.shape))
    assert relative_noise(noisy, noisy > 0) == pytest.approx(0.05, rel=0.1)
    mask = np.zeros_like(ramp, dtype=bool)
    mask[:, :32] = True
    smoothed, averaged = smooth_within_mask(np.where(mask, noisy, 9.0), mask, 2)
    assert np.all(smoothed[mask] < 4.0)  # the 9 m outside never leaks in
    assert averaged[24, 16] == 25 and averaged[24, 31] == 15


def visible_box_points(box: OrientedBox, rng, count=3000) -> np.ndarray:
    """Points on the two faces towards -x/-y and the top of a box: what one view sees."""
    local = rng.random((count, 3)) - 0.5
    face = rng.integers(0, 3, count)
    local[face == 0, 0], local[face == 1, 1], local[face == 2, 2] = -0.5, -0.5, 0.5
    local *= np.asarray(box.size)
    return local @ box.rotation.T + np.asarray(box.center)


def test_a_box_seen_from_one_side_is_recovered_whole():
    box = OrientedBox((1.0, 2.0, 0.3), (0.8, 0.5, 0.6), 0.6)
    fitted = fit_box(visible_box_points(box, np.random.default_rng(0)), floor_snap=0.05)
    assert fitted.method == "min_area_rectangle" and iou_3d(fitted.box, box) > 0.95


def test_a_half_seen_cylinder_is_completed_to_its_circle():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-np.pi / 2 - 0.6, -np.pi / 2 + 0.6 + np.pi / 2, 2000)  # the near ~160 degrees of the side
    side = np.column_stack([0.3 * np.cos(angles), 0.3 * np.sin(angles), rng.uniform(0, 0.8, 2000)])
    fitted = fit_box(side + [2.0, 1.0, 0.0])
    assert fitted.method == "circle"
    assert np.allclose(fitted.box.size[:2], 0.6, atol=0.01) and np.allclose(
        fitted.box.center[:2], [2.0, 1.0], atol=0.01
    )
    # the same points fitted as a rectangle would be half as deep; the circle is what makes it whole
    assert iou_3d(fitted.box, OrientedBox((2.0, 1.0, 0.4), (0.6, 0.6, 0.8), fitted.box.yaw)) > 0.9


def test_a_face_seen_edge_on_falls_back_to_pca():
    rng = np.random.default_rng(2)
    face = np.column_stack([rng.uniform(0, 1.0, 500), np.zeros(500), rng.uniform(0, 0.5, 500)])
    fitted = fit_box(face)
    assert fitted.method == "pca" and fitted.box.size[0] == pytest.approx(1.0, abs=0.01)
    assert fit_box(np.zeros((2, 3))) is None
