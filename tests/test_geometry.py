"""The conventions of docs/conventions.md, checked numerically."""

from __future__ import annotations

import numpy as np
import pytest

from psfm.geometry import backproject, backproject_pixels, intrinsics_from_fov, look_at, pixel_rays, project


def test_look_at_is_an_upright_opencv_camera():
    eye, target = np.array([1.0, -2.0, 1.5]), np.array([0.0, 0.0, 0.5])
    pose = look_at(eye, target)
    right, down, forward = pose[:3, 0], pose[:3, 1], pose[:3, 2]
    assert np.allclose(pose[:3, 3], eye)
    assert np.allclose(forward, (target - eye) / np.linalg.norm(target - eye))
    assert abs(right[2]) < 1e-12 and down[2] < 0  # no roll: right is horizontal, image-down points down
    assert np.allclose(np.cross(right, down), forward)  # right-handed
    rolled = look_at(eye, target, roll_deg=10.0)
    assert np.allclose(rolled[:3, 2], forward)  # roll turns the image about the optical axis only
    angle = np.degrees(np.arctan2(np.dot(rolled[:3, 0], down), np.dot(rolled[:3, 0], right)))
    assert angle == pytest.approx(10.0)


def test_intrinsics_are_square_pixels_without_skew():
    # at a 90 degree field of view the focal length is half the width. Pinned entry by entry: the round trips
    # below use the same K both ways and the principal-point test projects a point on the optical axis, so a
    # skew K[0, 1] = 1 cancels out of all of them (it survived mutation testing)
    expected = np.array([[32.0, 0.0, 32.0], [0.0, 32.0, 24.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(intrinsics_from_fov(64, 48, 90.0), expected, rtol=1e-12, atol=1e-12)


def test_target_projects_to_the_principal_point():
    intrinsics = intrinsics_from_fov(64, 48, 70.0)
    pose = look_at(np.array([0.3, 0.2, 1.4]), np.array([2.0, 1.0, 0.3]))
    pixels, depth = project(np.array([[2.0, 1.0, 0.3]]), intrinsics, pose)
    assert np.allclose(pixels[0], [32.0, 24.0]) and depth[0] > 0


def test_pixel_centres_and_back_projection_round_trip():
    intrinsics = intrinsics_from_fov(8, 6, 60.0)
    rays = pixel_rays(intrinsics, 6, 8)
    assert np.allclose(rays[..., 2], 1.0)
    assert np.allclose((rays @ intrinsics.T)[2, 3, :2], [3.5, 2.5])  # pixel (u=3, v=2) has its centre at +0.5
    pose = look_at(np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.5, 0.2]))
    depth = np.random.default_rng(0).uniform(0.5, 4.0, (6, 8))
    points = backproject(depth, intrinsics, pose)
    pixels, z = project(points.reshape(-1, 3), intrinsics, pose)
    u, v = np.meshgrid(np.arange(8) + 0.5, np.arange(6) + 0.5)
    assert np.allclose(pixels, np.stack([u, v], -1).reshape(-1, 2)) and np.allclose(z, depth.ravel())


def test_backproject_pixels_matches_the_whole_map():
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 4.0, (12, 16))
    intrinsics = intrinsics_from_fov(16, 12, 70.0)  # width, height
    pose = look_at(np.array([1.0, -2.0, 1.5]), np.zeros(3))
    rows, cols = np.nonzero(rng.random((12, 16)) < 0.3)
    expected = backproject(depth, intrinsics, pose)[rows, cols]
    np.testing.assert_allclose(backproject_pixels(rows, cols, depth[rows, cols], intrinsics, pose), expected)
