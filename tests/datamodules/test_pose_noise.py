"""Pose noise: exact reference view, proper rotations, the advertised spread, and training batches only."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.pipeline import LoaderOptions, build_pipeline
from psfm.datamodules.pose_noise import PoseNoise, perturb_poses
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.views import ViewSampling
from psfm.datamodules.writer import ShardWriter
from psfm.geometry import look_at
from tests.conftest import synthetic_scene


def test_axis_angle_matrix_turns_right_handed():
    """A quarter turn about +z takes +x to +y (mutation testing: the sine's sign flipped, a turn the other way,
    survived: the noise draws its angles symmetrically, so only this pins the convention)."""
    from psfm.datamodules.pose_noise import axis_angle_matrix

    turn = axis_angle_matrix(np.array([0.0, 0.0, 1.0]), math.pi / 2)
    assert turn @ np.array([1.0, 0.0, 0.0]) == pytest.approx([0.0, 1.0, 0.0], abs=1e-12)
    tilt = axis_angle_matrix(np.array([1.0, 0.0, 0.0]), 0.3)  # about +x: +y towards +z
    assert tilt @ np.array([0.0, 1.0, 0.0]) == pytest.approx([0.0, math.cos(0.3), math.sin(0.3)], abs=1e-12)


def scene_poses(num_views: int, seed: int) -> np.ndarray:
    """Normalized-looking poses [V, 4, 4]: view 0 the identity, the others around it."""
    rng = np.random.default_rng(seed)
    poses = np.stack(
        [look_at(rng.normal(0, 1, 3), rng.normal(0, 1, 3) + 3, rng.uniform(-30, 30)) for _ in range(num_views)]
    )
    return np.linalg.inv(poses[0]) @ poses


def rotation_angles_deg(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Angle of after · beforeᵀ for each view [V, 4, 4] -> [V] degrees."""
    relative = np.swapaxes(before[:, :3, :3], -1, -2) @ after[:, :3, :3]
    cosine = np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    return np.degrees(np.arccos(cosine))


def test_reference_view_stays_exact_and_rotations_stay_rotations():
    poses = scene_poses(6, 0)
    original = poses.copy()

    noisy = perturb_poses(poses, PoseNoise(rotation_deg=10.0, translation=0.2), random.Random(0))

    assert np.array_equal(poses, original), "the input must not be modified"
    assert np.array_equal(noisy[0], poses[0])
    rotations = noisy[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ np.swapaxes(rotations, -1, -2), np.broadcast_to(np.eye(3), (6, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rotations), np.ones(6), atol=1e-12)
    np.testing.assert_array_equal(noisy[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (6, 4)))
    assert (rotation_angles_deg(poses, noisy)[1:] > 0).all()
    assert (np.linalg.norm(noisy[1:, :3, 3] - poses[1:, :3, 3], axis=-1) > 0).all()


def test_zero_noise_is_the_identity():
    poses = scene_poses(5, 1)
    noise = PoseNoise()

    assert not noise.active
    np.testing.assert_array_equal(perturb_poses(poses, noise, random.Random(0)), poses)


def test_negative_std_is_refused():
    with pytest.raises(ValueError, match="pose_noise stds must be >= 0"):
        PoseNoise(rotation_deg=-1.0)
    with pytest.raises(ValueError, match="pose_noise stds must be >= 0"):
        PoseNoise(translation=-0.1)


@pytest.mark.parametrize("sigma", [5.0, 0.5])
def test_rotation_noise_has_the_advertised_spread_and_moves_no_camera(sigma):
    """The angle is |N(0, σ)| about a uniform axis: mean σ·√(2/π), RMS σ (2000 draws: ±10 % is > 5 standard errors).

    A small σ shows a mean that is not zero (mutation testing: N(1°, σ) survived at σ = 5°). The axis is
    read up to sign (a turn by -θ about a is one by θ about -a), so uniformity is checked on its second
    moment, E[a aᵀ] = I/3: an axis drawn from N(1, 1)³ leans towards (1, 1, 1) (mutation testing: survived
    the first-moment check, which a sign-symmetric angle makes zero for any axis).
    """
    rng = random.Random(1)
    poses = scene_poses(5, 2)
    angles, axes = [], []
    for _ in range(500):
        noisy = perturb_poses(poses, PoseNoise(rotation_deg=sigma), rng)
        np.testing.assert_array_equal(noisy[:, :3, 3], poses[:, :3, 3])
        angles.append(rotation_angles_deg(poses, noisy)[1:])
        relative = np.swapaxes(poses[1:, :3, :3], -1, -2) @ noisy[1:, :3, :3]  # camera-frame turn
        skew = np.stack(
            [
                relative[:, 2, 1] - relative[:, 1, 2],
                relative[:, 0, 2] - relative[:, 2, 0],
                relative[:, 1, 0] - relative[:, 0, 1],
            ],
            -1,
        )
        axes.append(skew / np.linalg.norm(skew, axis=-1, keepdims=True))
    angles, axes = np.concatenate(angles), np.concatenate(axes)

    assert angles.mean() == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.1)
    assert math.sqrt((angles**2).mean()) == pytest.approx(sigma, rel=0.1)
    assert np.quantile(angles, 0.5) == pytest.approx(sigma * 0.6745, rel=0.15)  # median of |N(0, σ)|
    second_moment = np.einsum("ni,nj->ij", axes, axes) / len(axes)
    np.testing.assert_allclose(second_moment, np.eye(3) / 3, atol=0.04, err_msg="axes are not uniform on the sphere")


def test_translation_noise_has_the_advertised_spread_per_axis():
    rng, poses = random.Random(2), scene_poses(5, 3)
    offsets = np.concatenate(
        [(perturb_poses(poses, PoseNoise(translation=0.1), rng) - poses)[1:, :3, 3] for _ in range(500)]
    )

    assert offsets.shape == (2000, 3)
    np.testing.assert_allclose(offsets.std(0), [0.1, 0.1, 0.1], rtol=0.1)
    assert np.abs(offsets.mean(0)).max() < 0.01


def config_for(directory, pose_noise: PoseNoise) -> DataModuleConfig:
    return DataModuleConfig(
        train=str(directory),
        val=str(directory),
        batch_size=3,
        num_workers=0,
        image_size=[16, 16],
        views=ViewSampling(min_views=3, max_views=5),
        shuffle_buffer=4,
        crop="random",
        augment=False,
        pin_memory=False,
        pose_noise=pose_noise,
    )


def test_datamodule_perturbs_training_poses_only(scene_shards):
    directory, _ = scene_shards
    clean = SceneDataModule(config_for(directory, PoseNoise()))
    noisy = SceneDataModule(config_for(directory, PoseNoise(rotation_deg=5.0, translation=0.05)))

    clean_train, noisy_train = list(clean.train_dataloader()), list(noisy.train_dataloader())

    assert len(clean_train) == len(noisy_train) == 4
    for plain, perturbed in zip(clean_train, noisy_train, strict=True):
        # the same scenes, views, crops and pixels: the noise changes the poses and nothing else
        assert plain.scene_keys == perturbed.scene_keys
        assert torch.equal(plain.view_ids, perturbed.view_ids)
        assert torch.equal(plain.images, perturbed.images)
        assert torch.equal(plain.intrinsics, perturbed.intrinsics)
        assert torch.equal(plain.pose_scale, perturbed.pose_scale)
        assert torch.equal(plain.cam_to_world[:, 0], perturbed.cam_to_world[:, 0])
        moved = (plain.cam_to_world[:, 1:] - perturbed.cam_to_world[:, 1:]).flatten(2).abs().amax(-1)
        assert (moved > 1e-4).all(), "every non-reference view gets its own noise"
        assert (moved < 0.5).all(), "5 degrees and 0.05 units do not move a camera that far"

    for plain, same in zip(clean.val_dataloader(), noisy.val_dataloader(), strict=True):
        assert plain.scene_keys == same.scene_keys
        assert torch.equal(plain.cam_to_world, same.cam_to_world)
        assert torch.equal(plain.images, same.images)


def test_noise_is_reproducible_and_spares_unposed_scenes(tmp_path):
    rng = np.random.default_rng(0)
    with ShardWriter(tmp_path / "mixed", 4, info={"test": True}) as writer:
        for index in range(4):
            writer.write(synthetic_scene(f"scene_{index}", rng, 4, 16, pose_source="none" if index % 2 else "gt"))
    urls = resolve_shards(str(tmp_path / "mixed")).urls
    options = LoaderOptions(
        batch_size=4, image_size=(16, 16), views=ViewSampling(4, 4), shuffle_buffer=1, pose_noise=PoseNoise(10.0, 0.1)
    )

    (batch,) = list(build_pipeline(urls, options, SharedEpoch(0)))
    (again,) = list(build_pipeline(urls, options, SharedEpoch(0)))
    (clean,) = list(build_pipeline(urls, replace(options, pose_noise=None), SharedEpoch(0)))

    assert torch.equal(batch.cam_to_world, again.cam_to_world)
    unposed = ~batch.has_pose
    assert unposed.tolist() == [False, True, False, True]
    assert torch.equal(batch.cam_to_world[unposed], torch.eye(4).expand(2, 4, 4, 4))
    assert not torch.allclose(batch.cam_to_world[~unposed], clean.cam_to_world[~unposed], atol=1e-4)
