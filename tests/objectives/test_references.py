"""Non-learned references: camera distance against numpy, nearest-view copy, context mean by hand."""

from __future__ import annotations

import math

import numpy as np
import torch

from psfm.geometry import look_at
from psfm.objectives.references import camera_distance, copy_nearest, mean_context
from tests.conftest import make_batch


def _random_poses(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([look_at(rng.normal(0, 2, 3), rng.normal(0, 0.5, 3), rng.uniform(-60, 60)) for _ in range(count)])


def _numpy_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Translation norm + geodesic rotation angle, the angle read off the relative rotation's axis-angle form."""
    relative = a[:3, :3].T @ b[:3, :3]
    # angle from the skew part and the trace together (atan2): accurate near 0 and near pi
    skew = np.array([relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0], relative[1, 0] - relative[0, 1]])
    angle = math.atan2(np.linalg.norm(skew) / 2, (np.trace(relative) - 1) / 2)
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3]) + angle)


def test_camera_distance_matches_numpy_and_is_zero_on_identical_poses_and_symmetric():
    poses_a, poses_b = _random_poses(3, 0), _random_poses(4, 1)
    a = torch.tensor(poses_a, dtype=torch.float32)
    b = torch.tensor(poses_b, dtype=torch.float32)

    distance = camera_distance(a, b)

    assert distance.shape == (3, 4)
    expected = np.array([[_numpy_distance(x, y) for y in poses_b] for x in poses_a])
    np.testing.assert_allclose(distance.numpy(), expected, atol=1e-4)
    torch.testing.assert_close(camera_distance(b, a), distance.T, atol=1e-4, rtol=0)
    self_distance = camera_distance(a, a)
    assert self_distance.diagonal().abs().max() < 1e-3
    assert (self_distance + torch.eye(3)).min() > 0.1  # distinct random cameras are far apart


def test_camera_distance_counts_rotation_in_radians_and_batches():
    base = torch.eye(4).expand(2, 1, 4, 4).clone()  # [B=2, A=1]
    turned = torch.eye(4).repeat(2, 2, 1, 1)  # [B=2, 2 views]
    angle = math.radians(30)
    turned[0, 1, :3, :3] = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    turned[1, 0, :3, 3] = torch.tensor([3.0, 4.0, 0.0])

    distance = camera_distance(base, turned)

    assert distance.shape == (2, 1, 2)
    torch.testing.assert_close(distance, torch.tensor([[[0.0, angle]], [[5.0, 0.0]]]), atol=1e-3, rtol=0)


def test_camera_distance_stays_finite_for_rotations_a_rounding_off_orthonormal():
    # poses that went through float32 arithmetic (noise, composition, JSON) are orthonormal only to ~1e-6:
    # the cosine (trace - 1) / 2 then leaves [-1, 1] at 0 and at pi, and arccos would answer NaN without the
    # clamp (mutation testing: either clamp bound dropped or widened to 2 survived)
    pose = torch.tensor(look_at(np.array([1.0, -2.0, 1.5]), np.zeros(3)), dtype=torch.float32)
    pose[:3, :3] *= 1 + 1e-5
    half_turn = pose.clone()
    half_turn[:3, :3] = pose[:3, :3] @ torch.diag(torch.tensor([-1.0, -1.0, 1.0]))  # pi about the optical axis

    distance = camera_distance(pose[None], torch.stack([pose, half_turn]))

    torch.testing.assert_close(distance, torch.tensor([[0.0, math.pi]]), atol=1e-5, rtol=0)


def _batch_with_known_nearest():
    """Scene 0: targets sit next to context views 2 then 0; scene 1: next to context view 1 then 2."""
    batch = make_batch(batch_size=2, num_views=5, num_context=3, seed=3)
    batch.context_index = torch.tensor([[0, 1, 2], [0, 2, 1]])
    batch.target_index = torch.tensor([[3, 4], [4, 3]])
    poses = torch.eye(4).repeat(2, 5, 1, 1)
    spots = {0: [0.0, 0.0, 0.0], 1: [5.0, 0.0, 0.0], 2: [0.0, 5.0, 0.0]}
    for scene in range(2):
        for view, spot in spots.items():
            poses[scene, view, :3, 3] = torch.tensor(spot)
    # scene 0: view 3 by view 2, view 4 by view 0 (turned 10 degrees: still nearer than the others)
    poses[0, 3, :3, 3] = torch.tensor([0.2, 4.9, 0.1])
    angle = math.radians(10)
    poses[0, 4, :3, :3] = torch.tensor(
        [[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]]
    )
    poses[0, 4, :3, 3] = torch.tensor([0.3, -0.2, 0.0])
    # scene 1 (context order 0, 2, 1, so the nearest's position in C differs from its view index)
    poses[1, 4, :3, 3] = torch.tensor([4.6, 0.3, 0.0])
    poses[1, 3, :3, 3] = torch.tensor([0.1, 4.0, 0.0])
    batch.cam_to_world = poses
    return batch, torch.tensor([[2, 0], [1, 2]])  # nearest context view (index into V) per target


def test_copy_nearest_copies_the_nearest_context_view():
    batch, nearest_view = _batch_with_known_nearest()
    features = torch.randn(2, 5, 3, 4)

    copied = copy_nearest(features, batch)

    assert copied.shape == (2, 2, 3, 4)
    for scene in range(2):
        for target in range(2):
            assert torch.equal(copied[scene, target], features[scene, nearest_view[scene, target]])


def test_copy_nearest_never_copies_a_target_view():
    batch, _ = _batch_with_known_nearest()
    batch.cam_to_world[0, 4] = batch.cam_to_world[0, 3]  # target 4 coincides with target 3, not a context view
    features = torch.randn(2, 5, 3, 4)

    copied = copy_nearest(features, batch)

    assert torch.equal(copied[0, 1], features[0, 2])  # view 3's neighbour among context views


def test_mean_context_is_the_per_patch_mean_of_context_views():
    batch = make_batch(batch_size=2, num_views=4, num_context=2, seed=1)
    batch.context_index = torch.tensor([[0, 3], [0, 1]])
    batch.target_index = torch.tensor([[1, 2], [2, 3]])
    features = torch.arange(2 * 4 * 3 * 2, dtype=torch.float32).reshape(2, 4, 3, 2) ** 1.5

    mean = mean_context(features, batch)

    assert mean.shape == (2, 2, 3, 2)
    for target in range(2):
        torch.testing.assert_close(mean[0, target], (features[0, 0] + features[0, 3]) / 2)
        torch.testing.assert_close(mean[1, target], (features[1, 0] + features[1, 1]) / 2)


def test_camera_distance_keeps_full_precision_under_mixed_precision():
    """Training runs under bf16 autocast on GPUs; the references must not pick neighbours by bf16 noise."""
    poses_a, poses_b = _random_poses(6, 2), _random_poses(5, 3)
    a = torch.tensor(poses_a, dtype=torch.float32)
    b = torch.tensor(poses_b, dtype=torch.float32)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        distance = camera_distance(a, b)
        self_distance = camera_distance(a, a)

    expected = np.array([[_numpy_distance(x, y) for y in poses_b] for x in poses_a])
    np.testing.assert_allclose(distance.float().numpy(), expected, atol=1e-3)
    assert self_distance.diagonal().abs().max() < 1e-3
