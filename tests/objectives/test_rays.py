"""Patch rays: pixel-centre convention, unit camera rays, Plücker coordinates checked against numpy."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from psfm.geometry import intrinsics_from_fov, look_at, pixel_rays, project
from psfm.objectives.rays import camera_rays, patch_centres, plucker_rays


def test_patch_centres_are_the_mean_of_their_pixel_centres():
    grid, image_size = (3, 4), (24, 48)  # patches of 8 x 12 pixels
    centres = patch_centres(grid, image_size)

    # independent: pixel (u, v) has its centre at (u + 0.5, v + 0.5) (psfm.geometry); average each patch
    u, v = np.meshgrid(np.arange(48) + 0.5, np.arange(24) + 0.5)
    expected = [
        (u[r * 8 : (r + 1) * 8, c * 12 : (c + 1) * 12].mean(), v[r * 8 : (r + 1) * 8, c * 12 : (c + 1) * 12].mean())
        for r in range(3)
        for c in range(4)
    ]
    assert centres.shape == (12, 2)
    np.testing.assert_allclose(centres.numpy(), np.array(expected), atol=1e-5)
    # row-major: the second entry is one patch to the right, the fifth one patch down
    np.testing.assert_allclose(centres[1] - centres[0], [12.0, 0.0])
    np.testing.assert_allclose(centres[4] - centres[0], [0.0, 8.0])


def test_centre_patch_of_a_centred_camera_looks_down_plus_z():
    intrinsics = torch.tensor(intrinsics_from_fov(48, 48, 70.0), dtype=torch.float32)
    rays = camera_rays(intrinsics, (3, 3), (48, 48))

    torch.testing.assert_close(rays[4], torch.tensor([0.0, 0.0, 1.0]))
    # OpenCV axes: the top-left patch looks up (-y) and left (-x), the bottom-right down and right
    assert rays[0, 0] < 0 and rays[0, 1] < 0 and rays[8, 0] > 0 and rays[8, 1] > 0


def test_camera_rays_are_unit_and_match_pixel_rays_at_one_pixel_patches():
    intrinsics = np.array([[30.0, 0.0, 9.0], [0.0, 25.0, 7.0], [0.0, 0.0, 1.0]])
    rays = camera_rays(torch.tensor(intrinsics, dtype=torch.float32)[None, None], (12, 16), (12, 16))

    assert rays.shape == (1, 1, 192, 3)
    torch.testing.assert_close(rays.norm(dim=-1), torch.ones(1, 1, 192))
    expected = pixel_rays(intrinsics, 12, 16).reshape(-1, 3)
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(rays[0, 0].numpy(), expected, atol=1e-5)


def _pose(eye, target) -> torch.Tensor:
    return torch.tensor(look_at(np.array(eye, dtype=float), np.array(target, dtype=float)), dtype=torch.float32)


def test_plucker_rays_match_an_independent_numpy_computation():
    intrinsics = intrinsics_from_fov(32, 32, 60.0)
    pose = look_at(np.array([1.0, -2.0, 1.5]), np.array([0.2, 0.1, 0.0]))
    plucker = plucker_rays(
        torch.tensor(intrinsics, dtype=torch.float32), torch.tensor(pose, dtype=torch.float32), (2, 2), (32, 32)
    )

    pixels = np.array([[8.0, 8.0, 1.0], [24.0, 8.0, 1.0], [8.0, 24.0, 1.0], [24.0, 24.0, 1.0]])  # patch centres
    directions = pixels @ np.linalg.inv(intrinsics).T @ pose[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    moments = np.cross(pose[:3, 3], directions)
    np.testing.assert_allclose(plucker.numpy(), np.concatenate([directions, moments], -1), atol=1e-5)


def test_plucker_moment_is_orthogonal_and_invariant_along_the_ray():
    intrinsics = torch.tensor(intrinsics_from_fov(32, 32, 60.0), dtype=torch.float32)
    pose = _pose([1.0, -2.0, 1.5], [0.0, 0.0, 0.0])
    plucker = plucker_rays(intrinsics, pose, (4, 4), (32, 32))
    directions, moments = plucker[..., :3], plucker[..., 3:]

    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(16))
    torch.testing.assert_close((directions * moments).sum(-1), torch.zeros(16), atol=1e-5, rtol=0)
    assert moments.norm(dim=-1).min() > 0.1  # the camera is off the origin: moments are not trivially zero

    # slide the camera 0.7 along its optical axis: the centre ray's line is unchanged, so its moment is too
    moved = pose.clone()
    moved[:3, 3] += 0.7 * pose[:3, 2]
    slid = plucker_rays(intrinsics, moved, (1, 1), (32, 32))[0]
    centre = plucker_rays(intrinsics, pose, (1, 1), (32, 32))[0]
    torch.testing.assert_close(slid, centre, atol=1e-5, rtol=0)
    # but a sideways move changes them
    sideways = pose.clone()
    sideways[:3, 3] += 0.5 * pose[:3, 0]
    assert not torch.allclose(plucker_rays(intrinsics, sideways, (4, 4), (32, 32))[..., 3:], moments, atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    grid=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    patch=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    focal=st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0)),
    principal=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    eye=st.tuples(*[st.floats(-3.0, 3.0)] * 3),
    roll=st.floats(-90.0, 90.0),
)
@example(grid=(2, 5), patch=(4, 3), focal=(1.0, 1.0), principal=(0.5, 0.5), eye=(1.0, -2.0, 1.5), roll=0.0)
@example(grid=(5, 2), patch=(3, 4), focal=(1.0, 1.0), principal=(0.5, 0.5), eye=(1.0, -2.0, 1.5), roll=0.0)
def test_rays_of_non_square_grids_pass_through_their_patch_centres(grid, patch, focal, principal, eye, roll):
    """Any grid shape, patch shape and camera: projecting a patch's ray back through K (and its Plücker line
    back through the pose) lands on the centre of that patch, in row-major order.

    Existing checks use square images or one-pixel patches; here rows and columns, H and W, fx/cx and fy/cy all
    differ, so any of them swapped moves some ray off its patch.
    """
    (rows, cols), (patch_h, patch_w) = grid, patch
    height, width = rows * patch_h, cols * patch_w
    intrinsics = np.array(
        [[focal[0] * width, 0.0, principal[0] * width], [0.0, focal[1] * height, principal[1] * height], [0, 0, 1]]
    )
    pose = look_at(np.array(eye), np.array([0.1, 0.2, -0.3]), roll_deg=roll)
    r, c = np.divmod(np.arange(rows * cols), cols)  # row-major
    centres = np.stack([(c + 0.5) * patch_w, (r + 0.5) * patch_h], axis=-1)  # middle of each patch's pixel span

    k, cam_to_world = torch.tensor(intrinsics, dtype=torch.float32), torch.tensor(pose, dtype=torch.float32)
    rays = camera_rays(k, grid, (height, width)).double().numpy()
    pixels = rays @ intrinsics.T
    np.testing.assert_allclose(pixels[:, :2] / pixels[:, 2:], centres, atol=1e-3 * max(height, width))

    plucker = plucker_rays(k, cam_to_world, grid, (height, width)).double().numpy()
    direction, moment = plucker[:, :3], plucker[:, 3:]
    closest = np.cross(direction, moment)  # the line's point nearest the origin (unit direction)
    offset = np.sum((pose[:3, 3] - closest) * direction, axis=-1, keepdims=True)  # the camera's place on the line
    along = closest + direction * (offset + 2.0)  # 2 m in front of the camera
    projected, depth = project(along, intrinsics, pose)
    assert np.all(depth > 0)
    np.testing.assert_allclose(projected, centres, atol=1e-3 * max(height, width))
