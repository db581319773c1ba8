"""The procedural scene sampler: deterministic, physically plausible, cameras where a person could stand."""

from __future__ import annotations

import numpy as np
import pytest

from psfm.worlds.catalog import CATEGORY_BY_NAME
from psfm.worlds.sampler import CAMERA_CLEARANCE, WorldConfig, sample_scene

CONFIG = WorldConfig(views_per_scene=6, height=32, width=32)
SCENES = [sample_scene(i, CONFIG) for i in range(40)]


def test_same_index_same_scene_and_splits_differ():
    again = sample_scene(3, CONFIG)
    assert again.objects == SCENES[3].objects and again.room == SCENES[3].room
    assert all(
        np.array_equal(a.cam_to_world, b.cam_to_world) for a, b in zip(again.cameras, SCENES[3].cameras, strict=True)
    )
    assert sample_scene(3, CONFIG, split="val").room != SCENES[3].room
    assert len({scene.scene_id for scene in SCENES}) == len(SCENES)


@pytest.mark.parametrize("scene", SCENES[:20], ids=lambda s: s.scene_id)
def test_objects_inside_room_and_resting(scene):
    lower, upper = scene.room.bounds
    by_id = {obj.instance_id: obj for obj in scene.objects}
    assert [obj.instance_id for obj in scene.objects] == list(range(1, len(scene.objects) + 1))
    for obj in scene.objects:
        corners = obj.box.corners()
        assert (corners >= lower - 1e-9).all() and (corners <= upper + 1e-9).all(), obj
        bottom = obj.box.center[2] - obj.box.size[2] / 2
        if obj.supported_by == 0:
            assert bottom == pytest.approx(0.0)
        else:
            support = by_id[obj.supported_by]
            assert CATEGORY_BY_NAME[support.category].support
            assert bottom == pytest.approx(support.box.center[2] + support.box.size[2] / 2)
            assert np.allclose(obj.box.center[:2], support.box.center[:2])


def test_floor_objects_do_not_overlap_and_leave_the_camera_path_free():
    for scene in SCENES:
        floor = [obj for obj in scene.objects if obj.supported_by == 0]
        for i, a in enumerate(floor):
            radius_a = 0.5 * np.hypot(*a.box.size[:2])
            for b in floor[i + 1 :]:
                radius_b = 0.5 * np.hypot(*b.box.size[:2])
                assert np.linalg.norm(np.subtract(a.box.center[:2], b.box.center[:2])) >= radius_a + radius_b
            for camera in scene.cameras:
                assert (
                    np.linalg.norm(camera.cam_to_world[:2, 3] - a.box.center[:2]) >= radius_a + CAMERA_CLEARANCE - 1e-9
                )


def test_cameras_are_handheld_and_look_into_the_room():
    for scene in SCENES:
        lower, upper = scene.room.bounds
        for camera in scene.cameras:
            pose = camera.cam_to_world
            assert np.allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-9)
            assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
            assert (pose[:3, 3] > lower).all() and (pose[:3, 3] < upper).all()
            assert CONFIG.camera_height[0] <= pose[2, 3] <= CONFIG.camera_height[1]
            down = pose[:3, 1]  # OpenCV y axis points down in the image
            roll_like = np.degrees(np.arcsin(abs(np.dot(pose[:3, 0], [0, 0, 1]))))
            assert down[2] < 0 and roll_like <= CONFIG.max_roll_deg + 1e-6  # upright, small roll
            forward = pose[:3, 2]
            assert forward[2] < 0  # looking slightly down at the room's contents


def test_scenes_vary():
    counts = {len(scene.objects) for scene in SCENES}
    categories = {obj.category for scene in SCENES for obj in scene.objects}
    assert len(counts) >= 4 and categories == set(CATEGORY_BY_NAME)
    assert any(obj.supported_by for scene in SCENES for obj in scene.objects)
    assert len({scene.room.floor_pattern for scene in SCENES}) >= 3
