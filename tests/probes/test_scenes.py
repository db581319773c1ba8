"""Fixed probe views: key-seeded order, reference frame, depth, skipped scenes, refitting to another size."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from psfm.datamodules.batching import normalize_poses
from psfm.datamodules.codecs import decode_rgb
from psfm.datamodules.writer import ShardWriter
from psfm.probes.scenes import load_probe_scenes, view_order
from psfm.worlds.generate import generate_world
from psfm.worlds.sampler import WorldConfig
from tests.conftest import synthetic_scene


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe_world") / "train"
    generate_world(out, WorldConfig(views_per_scene=8, height=32, width=32), 6, "train", 3, progress=False)
    return out


@pytest.fixture(scope="module")
def scenes(world):
    return load_probe_scenes(str(world), (32, 32), num_context=2, num_views=6, progress=False)


def stored_images(world: Path) -> dict[str, bytes]:
    images = {}
    for shard in sorted(world.glob("*.tar")):
        with tarfile.open(shard) as tar:
            images.update({m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".jpg")})
    return images


def test_view_order_is_a_permutation_drawn_from_the_key():
    order = view_order("scene_a", 8)
    assert sorted(order) == list(range(8)) and order == view_order("scene_a", 8)
    assert any(view_order(f"scene_{i}", 8) != order for i in range(5))


def test_shapes_and_reference_frame(scenes):
    assert len(scenes) == 6 and scenes.num_views == 6 and scenes.num_context == 2 and scenes.skipped == {}
    assert scenes.images.shape == (6, 6, 3, 32, 32) and scenes.images.dtype == torch.uint8
    assert scenes.intrinsics.shape == (6, 6, 3, 3) and scenes.cam_to_world.shape == (6, 6, 4, 4)
    assert scenes.depth is not None and scenes.depth.shape == (6, 6, 32, 32) and (scenes.depth > 0).all()
    assert scenes.image_size == (32, 32) and scenes.stored_size == (32, 32)
    assert torch.allclose(scenes.cam_to_world[:, 0], torch.eye(4).expand(6, 4, 4), atol=1e-5)
    mean_distance = scenes.cam_to_world[:, 1:, :3, 3].norm(dim=-1).mean(1)  # unit camera spread
    assert torch.allclose(mean_distance, torch.ones(6), atol=1e-4)
    assert all("room" in meta and "objects" in meta for meta in scenes.metas)
    floats = scenes.float_images(slice(0, 2), [0, 3])
    assert floats.shape == (2, 2, 3, 32, 32) and floats.dtype == torch.float32 and floats.max() <= 1.0


def test_views_follow_the_key_seeded_order(scenes, world):
    images = stored_images(world)
    for index, key in enumerate(scenes.keys):
        order = view_order(key, 8)[:6]
        views = scenes.metas[index]["views"]
        raw = np.stack([np.asarray(views[i]["cam_to_world"]) for i in order])
        normalized, scale = normalize_poses(raw)
        assert torch.allclose(scenes.cam_to_world[index], torch.from_numpy(normalized).float(), atol=1e-5)
        assert scenes.pose_scale[index].item() == pytest.approx(scale, rel=1e-5)
        for position, view in enumerate(order):
            expected = decode_rgb(images[f"{key}.{views[view]['image']}"])
            assert np.array_equal(scenes.images[index, position].permute(1, 2, 0).numpy(), expected)
            assert np.allclose(scenes.intrinsics[index, position].numpy(), views[view]["intrinsics"])


def test_refitting_to_another_size_updates_intrinsics(scenes, world):
    small = load_probe_scenes(str(world), (16, 16), num_context=2, num_views=6, progress=False)
    assert small.images.shape[-2:] == (16, 16) and small.depth.shape[-2:] == (16, 16)
    assert small.stored_size == (32, 32) and small.image_size == (16, 16)
    assert torch.allclose(small.intrinsics[..., 0, 0], scenes.intrinsics[..., 0, 0] / 2)
    assert torch.allclose(small.intrinsics[..., 1, 1], scenes.intrinsics[..., 1, 1] / 2)
    assert torch.allclose(small.cam_to_world, scenes.cam_to_world)  # same views, same order


def test_scenes_that_cannot_be_probed_are_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(0)
    with ShardWriter(tmp_path, 4, info={"test": True}) as writer:
        writer.write(synthetic_scene("full_a", rng, 6, 16))
        writer.write(synthetic_scene("short", rng, 4, 16))
        writer.write(synthetic_scene("unposed", rng, 6, 16, pose_source="none"))
        writer.write(synthetic_scene("full_b", rng, 7, 16))
    loaded = load_probe_scenes(str(tmp_path), (16, 16), num_context=2, num_views=6, progress=False)
    assert loaded.keys == ["full_a", "full_b"]
    assert loaded.skipped == {"fewer than 6 views": 1, "no poses": 1}
    assert loaded.metas[0].get("room") is None  # synthetic shards carry no room annotation
    limited = load_probe_scenes(str(tmp_path), (16, 16), num_context=2, num_views=6, max_scenes=1, progress=False)
    assert limited.keys == ["full_a"]


def test_too_few_views_for_two_subsets_or_no_scene_at_all(tmp_path, world):
    with pytest.raises(ValueError, match="num_views=3 must be >= 2 \\* num_context=4"):
        load_probe_scenes(str(world), (32, 32), num_context=2, num_views=3, progress=False)
    with pytest.raises(ValueError, match="no scene with >= 9 posed views"):
        load_probe_scenes(str(world), (32, 32), num_context=2, num_views=9, progress=False)
