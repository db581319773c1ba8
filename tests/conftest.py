"""Shared fixtures: tiny synthetic scene shards written through the real writer, and random batches."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from psfm.datamodules.sample import build_sample
from psfm.datamodules.skips import SKIPS
from psfm.datamodules.writer import ShardWriter
from psfm.geometry import intrinsics_from_fov, look_at
from psfm.types import MultiViewBatch

os.environ.setdefault("WANDB_MODE", "offline")


def _keep_mutmut_stats_in_this_process() -> None:
    """Under ``mutmut``'s test-mapping run, tests that start psfm in a subprocess must not inherit the mapping.

    mutmut maps tests to functions with ``MUTANT_UNDER_TEST=stats``; a child process inheriting it records
    its calls too, looks for mutmut's config in its own working directory (a ``tmp_path``) and crashes, so
    the whole mutation run stops before any mutant. The mode moves into mutmut's process-local state here,
    so children run plain code. Outside mutation testing this does nothing.
    """
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    from mutmut.mutation.trampoline import set_mutant_under_test

    set_mutant_under_test("stats")
    del os.environ["MUTANT_UNDER_TEST"]


_keep_mutmut_stats_in_this_process()


def synthetic_scene(
    key: str, rng: np.random.Generator, num_views: int, size: int, pose_source: str = "gt", image_format: str = "png"
):
    """A scene with random images but valid cameras circling the origin; depth/mask filled per view."""
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(num_views)]
    intrinsics = [intrinsics_from_fov(size, size, 60.0)] * num_views
    poses = None
    if pose_source != "none":
        angles = rng.uniform(0, 2 * np.pi, num_views)
        poses = [look_at(np.array([2 * np.cos(a), 2 * np.sin(a), 1.5]), np.zeros(3)) for a in angles]
    depths = [np.full((size, size), 1.0 + i, np.float32) for i in range(num_views)]
    masks = [np.full((size, size), i % 3, np.int64) for i in range(num_views)]
    return build_sample(
        key, images, intrinsics, poses, pose_source, {"kind": "test"}, depths, masks, image_format=image_format
    )


def write_synthetic_shards(
    directory: Path, num_scenes: int, per_shard: int, num_views: int = 6, size: int = 16, seed: int = 0
) -> list[str]:
    """Write ``num_scenes`` synthetic scenes; returns their keys in order."""
    rng = np.random.default_rng(seed)
    keys = [f"scene_{i:04d}" for i in range(num_scenes)]
    with ShardWriter(directory, per_shard, info={"test": True}) as writer:
        for key in keys:
            writer.write(synthetic_scene(key, rng, num_views, size))
    return keys


def write_scenes_with_views(directory: Path, views_per_scene: list[int]) -> list[str]:
    """One scene per entry, with that many views, three scenes a shard."""
    rng = np.random.default_rng(0)
    keys = [f"scene_{i:04d}" for i in range(len(views_per_scene))]
    with ShardWriter(directory, 3, info={"test": True}) as writer:
        for key, views in zip(keys, views_per_scene, strict=True):
            writer.write(synthetic_scene(key, rng, views, 16))
    return keys


@pytest.fixture
def fresh_skips():
    """This process's skip counter, drained and with its log limit reset.

    It logs the first 20 skips per process only, and the tests share one process: without the reset a
    test that checks a 'skipped' warning passes alone and fails after twenty skips of earlier tests.
    """
    SKIPS.drain()
    SKIPS.events = 0
    return SKIPS


@pytest.fixture
def scene_shards(tmp_path: Path) -> tuple[Path, list[str]]:
    """12 scenes x 6 views of 16x16 in 4 shards of 3."""
    directory = tmp_path / "shards"
    return directory, write_synthetic_shards(directory, num_scenes=12, per_shard=3)


def make_batch(
    batch_size: int = 2,
    num_views: int = 4,
    num_context: int = 2,
    size: int = 32,
    seed: int = 0,
    with_depth: bool = True,
) -> MultiViewBatch:
    """A random ``MultiViewBatch`` with real geometry: cameras on a circle looking at the origin.

    Poses are normalized to view 0 like the loader's; images are noise (models only need shapes).
    """
    generator = torch.Generator().manual_seed(seed)
    poses = []
    for scene in range(batch_size):
        angles = [2 * math.pi * view / num_views + scene for view in range(num_views)]
        eyes = [np.array([2 * math.cos(a), 2 * math.sin(a), 1.2 + 0.1 * view]) for view, a in enumerate(angles)]
        poses.append(torch.tensor(np.stack([look_at(eye, np.zeros(3)) for eye in eyes]), dtype=torch.float32))
    cam_to_world = torch.stack(poses)
    cam_to_world = torch.linalg.inv(cam_to_world[:, :1]) @ cam_to_world
    intrinsics = torch.tensor(intrinsics_from_fov(size, size, 60.0), dtype=torch.float32)
    order = torch.stack([torch.randperm(num_views - 1, generator=generator) + 1 for _ in range(batch_size)])
    return MultiViewBatch(
        images=torch.rand(batch_size, num_views, 3, size, size, generator=generator),
        intrinsics=intrinsics.expand(batch_size, num_views, 3, 3).clone(),
        cam_to_world=cam_to_world,
        context_index=torch.cat([torch.zeros(batch_size, 1, dtype=torch.long), order[:, : num_context - 1]], 1),
        target_index=order[:, num_context - 1 :],
        pose_scale=torch.ones(batch_size),
        has_pose=torch.ones(batch_size, dtype=torch.bool),
        view_ids=torch.arange(num_views).expand(batch_size, -1).clone(),
        depth=1 + 3 * torch.rand(batch_size, num_views, 1, size, size, generator=generator) if with_depth else None,
        scene_keys=[f"scene{i}" for i in range(batch_size)],
        pose_sources=["gt"] * batch_size,
    )
