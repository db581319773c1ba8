"""Small world scenes and shards for the QA tests: few scenes, few views, tiny renders, so they run in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from psfm.qa.sources import facts_from_scene
from psfm.worlds import WorldConfig, sample_scene
from psfm.worlds.generate import generate_world
from psfm.worlds.render import render_scene

SMALL_WORLD = WorldConfig(views_per_scene=6, height=64, width=64)


def world_facts(index: int, config: WorldConfig = SMALL_WORLD, split: str = "val"):
    """A world scene, its renders and its ground-truth facts."""
    scene = sample_scene(index, config, split)
    views = render_scene(scene)
    return scene, views, facts_from_scene(scene, views)


def meta_of(scene) -> dict:
    """A shard-style meta.json record of a world scene."""
    return {
        "scene_id": scene.scene_id,
        "image_size": [scene.cameras[0].height, scene.cameras[0].width],
        "pose_source": "gt",
        "metric_scale": "gt",
        "views": [
            {"intrinsics": c.intrinsics.tolist(), "cam_to_world": c.cam_to_world.tolist()} for c in scene.cameras
        ],
        "objects": [o.to_json() for o in scene.objects],
        "room": scene.room.to_json(),
    }


@pytest.fixture(scope="session")
def world_scenes():
    """Six scenes (64 px, 6 views) with renders and facts, shared by the template tests."""
    return [world_facts(index) for index in range(6)]


@pytest.fixture(scope="session")
def tiny_world_shards(tmp_path_factory) -> Path:
    """Three world scenes at 32x32 with 4 views, written by the real generator."""
    directory = tmp_path_factory.mktemp("world") / "val"
    generate_world(directory, WorldConfig(views_per_scene=4, height=32, width=32), 3, split="val", progress=False)
    return directory
