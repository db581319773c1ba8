"""Relative pose: the rotation maths, and a probe that reads a pose held in the tokens but not from noise."""

from __future__ import annotations

import pytest
import torch

from psfm.probes.pose import (
    angle_between_directions,
    angle_between_rotations,
    pose_items,
    relative_pose_probe,
    rotation_from_6d,
)
from psfm.probes.sources import ProbeFeatures
from psfm.probes.targets import relative_pose
from tests.probes.conftest import make_scenes, pose, random_rotations, rotation_z


def test_rotation_from_6d_inverts_the_first_two_columns():
    rotations = random_rotations(32, torch.Generator().manual_seed(0))
    six = torch.cat([rotations[..., 0], rotations[..., 1]], dim=-1)
    assert torch.allclose(rotation_from_6d(six), rotations, atol=1e-5)
    assert torch.allclose(rotation_from_6d(3 * six), rotations, atol=1e-5)  # scale-free


def test_rotation_from_6d_always_gives_a_proper_rotation():
    result = rotation_from_6d(torch.randn(64, 6, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(result.transpose(-1, -2) @ result, torch.eye(3).expand(64, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(result), torch.ones(64), atol=1e-5)


def test_angles_between_rotations_and_directions():
    assert angle_between_rotations(torch.eye(3), rotation_z(30)).item() == pytest.approx(30, abs=1e-3)
    assert angle_between_rotations(rotation_z(30), rotation_z(-60)).item() == pytest.approx(90, abs=1e-3)
    assert angle_between_rotations(rotation_z(10), rotation_z(10)).item() == pytest.approx(0, abs=0.1)
    x_half_turn = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    assert angle_between_rotations(torch.eye(3), x_half_turn).item() == pytest.approx(180, abs=1e-3)
    batch = torch.stack([rotation_z(a) for a in (0, 45, 120)])
    assert torch.allclose(angle_between_rotations(torch.eye(3).expand(3, 3, 3), batch), torch.tensor([0.0, 45, 120]))
    directions = angle_between_directions(
        torch.tensor([[1.0, 0, 0], [0, 2, 0]]), torch.tensor([[0, 3.0, 0], [0, 1, 1]])
    )
    assert torch.allclose(directions, torch.tensor([90.0, 45.0]), atol=1e-4)


def test_relative_pose_by_hand():
    """Camera 0 at (0, 0, 1) turned 90° about z; camera 1 at (0, 1, 1) unturned.

    In camera 0's frame camera 1 is turned -90° about z, and sits at R0^T (t1 - t0) = Rz(-90) (0, 1, 0) = (1, 0, 0).
    """
    cam_to_world = torch.stack([pose(rotation_z(90), [0, 0, 1]), pose(torch.eye(3), [0, 1, 1])])[None]
    rotation, direction = relative_pose(cam_to_world, 0, 1)
    assert torch.allclose(rotation[0], rotation_z(-90), atol=1e-6)
    assert torch.allclose(direction[0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    rotation, direction = relative_pose(cam_to_world, 1, 0)
    assert torch.allclose(rotation[0], rotation_z(90), atol=1e-6)
    assert torch.allclose(direction[0], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)  # unit length whatever the distance


def posed_scenes(count: int, generator: torch.Generator, num_views: int = 4):
    """Random proper rotations and translations, normalized to view 0 (identity), 2 context views."""
    cam_to_world = torch.eye(4).repeat(count, num_views, 1, 1)
    cam_to_world[:, 1:, :3, :3] = random_rotations(count * (num_views - 1), generator).view(count, -1, 3, 3)
    cam_to_world[:, 1:, :3, 3] = torch.randn(count, num_views - 1, 3, generator=generator)
    return make_scenes(cam_to_world, num_context=2)


def test_pose_items_cover_every_ordered_pair():
    scenes = posed_scenes(5, torch.Generator().manual_seed(0))
    scene, pair, target = pose_items(scenes)
    assert scene.tolist() == list(range(5)) * 2 and pair.tolist() == [[0, 1]] * 5 + [[1, 0]] * 5
    assert torch.allclose(target[:5, :3], scenes.cam_to_world[:, 1, :3, 0])  # view 0 is the identity
    assert torch.allclose(target[:5, 6:], torch.nn.functional.normalize(scenes.cam_to_world[:, 1, :3, 3], dim=-1))


def pose_features(scenes, generator: torch.Generator, informative: bool) -> ProbeFeatures:
    """4 noise tokens per view; if informative, token 0 of the second view of each pair holds the pair's pose.

    That token reads [6D rotation, translation direction, 3, -3, 0...]: the two anchors let the pose
    survive the probe's per-token LayerNorm.
    """
    tokens = torch.randn(len(scenes), 2, 4, 16, generator=generator)
    if informative:
        for first, second in ((0, 1), (1, 0)):
            rotation, direction = relative_pose(scenes.cam_to_world, first, second)
            tokens[:, second, 0] = 0.0
            tokens[:, second, 0, :9] = torch.cat([rotation[..., 0], rotation[..., 1], direction], -1)
            tokens[:, second, 0, 9:11] = torch.tensor([3.0, -3.0])
    scene_tokens = torch.randn(len(scenes), 2, 8, generator=generator)
    return ProbeFeatures(scene_tokens, scene_tokens.clone(), tokens, (2, 2), False, True)


@pytest.mark.parametrize("informative", [True, False])
def test_relative_pose_probe_reads_a_pose_held_in_the_tokens_and_not_from_noise(informative):
    generator = torch.Generator().manual_seed(0)
    train, val = posed_scenes(256, generator), posed_scenes(64, generator)
    scores = relative_pose_probe(
        pose_features(train, generator, informative), pose_features(val, generator, informative), train, val, [0], 200
    )
    rotation = next(s for s in scores if s.metric == "rotation error (°)").mean
    direction = next(s for s in scores if s.metric == "translation direction error (°)").mean
    if informative:
        assert rotation < 10 and direction < 10
    else:  # uniformly random rotations: the train mean is ~126° off on average
        assert rotation > 60 and direction > 45
