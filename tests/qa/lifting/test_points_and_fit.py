"""Point cleaning (erosion, flying pixels, MAD, noise estimate) and box fitting (rectangle, circle, PCA)."""

from __future__ import annotations

import numpy as np
import pytest

from psfm.geometry import intrinsics_from_fov
from psfm.qa.boxes import iou_3d
from psfm.qa.lifting.fit import fit_box, footprint_rectangle, round_footprint
from psfm.qa.lifting.points import (
    erode,
    flying_pixels,
    inconsistent_boundary,
    jump_tolerance,
    mad_inliers,
    object_points,
    relative_noise,
    smooth_within_mask,
)
from psfm.qa.polygons import convex_hull, min_area_rectangle
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


def test_the_jump_test_widens_with_the_views_noise():
    rng = np.random.default_rng(0)
    wall = np.full((64, 64), 3.0) * (1 + 0.05 * rng.standard_normal((64, 64)))
    noise = relative_noise(wall, wall > 0)
    # a fixed 5 % test takes noise for edges: about four pixels in ten
    assert flying_pixels(wall, 0.05).mean() > 0.3
    assert jump_tolerance(0.05, noise) == pytest.approx(3 * np.sqrt(2) * noise)
    assert flying_pixels(wall, jump_tolerance(0.05, noise)).mean() < 0.01
    assert jump_tolerance(0.05, 0.0) == 0.05  # clean depth keeps the configured jump
    wall[32, 32] = 6.0  # a pixel halfway to a surface 6 m further is still flying
    wall[32, 31], wall[32, 33] = 3.0, 9.0
    assert flying_pixels(wall, jump_tolerance(0.05, noise))[32, 32]


def block_on_a_wall() -> tuple[np.ndarray, np.ndarray]:
    """A 6 x 8 px block at 2 m with a 2-px wide, 6-px long leg below it, in front of a wall at 4 m."""
    depth, mask = np.full((20, 20), 4.0), np.zeros((20, 20), dtype=bool)
    mask[4:10, 6:14] = True  # block
    mask[10:16, 7:9] = True  # leg
    depth[mask] = 2.0 + 0.01 * np.arange(20)[None, :].repeat(20, 0)[mask]  # a slightly slanted surface
    return depth, mask


def test_depth_checked_erosion_keeps_clean_boundaries_and_thin_parts():
    depth, mask = block_on_a_wall()
    assert not inconsistent_boundary(depth, mask, 1, 0.05).any()
    # a blind 1-px erosion keeps 24 of the 60 pixels, and nothing of the leg
    assert erode(mask, 1).sum() == 24 and not erode(mask, 1)[10:16].any()


def test_depth_checked_erosion_drops_boundary_pixels_off_the_surface():
    depth, mask = block_on_a_wall()
    depth[4, 9] = 3.0  # flying: halfway to the wall
    depth[9, 13] = 4.0  # mask bled onto the wall
    depth[12, 7] = 2.9  # a flying pixel on the leg: its leg neighbours disagree
    depth[6, 10] = 3.0  # interior: not a boundary question (left to the flying-pixel test)
    dropped = inconsistent_boundary(depth, mask, 1, 0.05)
    assert {tuple(p) for p in np.argwhere(dropped)} == {(4, 9), (9, 13), (12, 7)}


def test_a_small_clean_object_keeps_every_pixel():
    depth, mask = block_on_a_wall()
    intrinsics = intrinsics_from_fov(20, 20, 60.0)
    points, reason = object_points(depth, mask, intrinsics, np.eye(4), 1, 0.05, 3.0, 8)
    assert reason == "" and len(points) >= 58  # of 60; only the MAD trim may take the leg's far end


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
    assert fitted.method == "rectangle" and iou_3d(fitted.box, box) > 0.95


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


def corner_view_points(box: OrientedBox, rng, count=2000, corner_gap=0.03) -> np.ndarray:
    """Points on the two side faces towards -x/-y of a tall box (its top above the camera): an L footprint.

    The vertical corner edge itself is not seen (``corner_gap``), as when a pixel grid misses it.
    """
    local = rng.random((count, 3)) - 0.5
    face = rng.integers(0, 2, count)
    local[face == 0, 0], local[face == 1, 1] = -0.5, -0.5
    local *= np.asarray(box.size)
    near_corner = np.all(local[:, :2] < -np.asarray(box.size[:2]) / 2 + corner_gap, axis=1)
    local = local[~near_corner]
    return local @ box.rotation.T + np.asarray(box.center)


def test_an_l_footprint_takes_the_rectangle_of_its_faces_not_of_its_hull():
    """The hull of two faces is a right triangle: its rectangle along the hypotenuse is no bigger."""
    box = OrientedBox((1.0, 2.0, 0.95), (1.1, 0.36, 1.9), 0.4)
    points = corner_view_points(box, np.random.default_rng(4))
    hull = convex_hull(points[:, :2], grid=0.005)
    turned = np.degrees((min_area_rectangle(hull).angle - box.yaw) % (np.pi / 2))
    assert 5 < turned < 85  # the smallest-area rectangle lies along the hypotenuse
    rectangle = footprint_rectangle(hull)
    assert np.degrees((rectangle.angle - box.yaw) % (np.pi / 2)) == pytest.approx(0, abs=1) or np.degrees(
        (rectangle.angle - box.yaw) % (np.pi / 2)
    ) == pytest.approx(90, abs=1)
    fitted = fit_box(points, floor_snap=0.1)
    assert fitted.method == "rectangle" and iou_3d(fitted.box, box) > 0.9


def test_corner_clusters_of_a_triangle_are_no_arc():
    """Hull vertices crowd at the (slightly round) corners of an L seen from one side; the circle through
    the corners holds all of them while following none of the outline (counting vertices, a 0.9 m shelf
    at 128 px was completed to a 1 m disc)."""
    turn = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = 0.015 * np.column_stack([np.cos(turn), np.sin(turn)])
    hull = convex_hull(np.concatenate([corner + ring for corner in ([0.0, 0.0], [1.0, 0.0], [0.0, 0.35])]))
    assert len(hull) > 20
    for seed in range(10):
        assert round_footprint(hull, min_area_rectangle(hull), np.random.default_rng(seed)) is None
    # the arc of a half-seen cylinder is still recognised from its outline
    angles = np.linspace(-np.pi, 0, 40)
    arc = np.column_stack([0.3 * np.cos(angles), 0.3 * np.sin(angles)])
    hull = convex_hull(arc)
    found = round_footprint(hull, min_area_rectangle(hull), np.random.default_rng(0))
    assert found is not None and found[1] == pytest.approx(0.3, abs=0.01)
