"""Shared fixtures: tiny synthetic scene shards written through the real writer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from psfm.datamodules.sample import build_sample
from psfm.datamodules.writer import ShardWriter
from psfm.geometry import intrinsics_from_fov, look_at

os.environ.setdefault("WANDB_MODE", "offline")


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


@pytest.fixture
def scene_shards(tmp_path: Path) -> tuple[Path, list[str]]:
    """12 scenes x 6 views of 16x16 in 4 shards of 3."""
    directory = tmp_path / "shards"
    return directory, write_synthetic_shards(directory, num_scenes=12, per_shard=3)
