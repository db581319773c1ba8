"""Captures in the wild's formats, written from rendered world scenes whose true cameras are known.

Each writer takes a ``RenderedScene`` (OpenCV cameras, metric depth, object centres) and lays it out as a
user's capture would be; the tests convert it and compare the shards' cameras with the truth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from psfm.converters.frames import distort_normalized, sample_bilinear
from psfm.datamodules.codecs import decode_depth, decode_mask, decode_rgb
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.format import SceneMeta
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.stages import ShardList, scene_reader
from psfm.geometry import backproject, project
from psfm.worlds.render import render_scene
from psfm.worlds.sampler import WorldConfig, sample_scene

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class RenderedScene:
    images: list[np.ndarray]  # [H, W, 3] uint8
    depths: list[np.ndarray]  # [H, W] float32 metres
    intrinsics: list[np.ndarray]
    cam_to_world: list[np.ndarray]  # OpenCV
    points: np.ndarray  # [N, 3] object centres, world frame
    instances: list[np.ndarray]  # [H, W] uint16 world instance ids, 0 = room
    categories: dict[int, str]  # world instance id -> category
    room_height: float  # metres; the floor is z = 0


@functools.lru_cache(maxsize=8)
def rendered(index: int = 0, height: int = 48, width: int = 64, views: int = 4) -> RenderedScene:
    """A world scene rendered at a non-square size (cached: tests share it, never mutate it)."""
    scene = sample_scene(index, WorldConfig(views_per_scene=views, height=height, width=width), "train")
    rendered_views = render_scene(scene)
    return RenderedScene(
        [view.rgb for view in rendered_views],
        [view.depth for view in rendered_views],
        [camera.intrinsics for camera in scene.cameras],
        [camera.cam_to_world for camera in scene.cameras],
        np.array([obj.box.center for obj in scene.objects]),
        [view.instance for view in rendered_views],
        {obj.instance_id: obj.category for obj in scene.objects},
        scene.room.size[2],
    )


def _lattice(cells: np.ndarray) -> np.ndarray:
    """A value in [0, 1] per integer 3D cell [..., 3], the same on every machine.

    A mixing hash (multiply, xor-shift): an xor of per-axis products is nearly unchanged when every cell index
    flips sign (two's complement), so the paint would repeat under a half turn of the room, and SfM glues the
    views of one wall onto the opposite one.
    """
    hashed = (cells @ np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D], np.int64)).astype(np.uint64)
    for shift, factor in ((15, 0x2C1B3C6D), (12, 0x297A2D39)):
        hashed ^= hashed >> np.uint64(shift)
        hashed *= np.uint64(factor)
    hashed ^= hashed >> np.uint64(15)
    return (hashed & np.uint64(1023)).astype(np.float32) / 1023


def value_noise(points: np.ndarray, frequency: float) -> np.ndarray:
    """Smooth 3D value noise [...] at world ``points`` [..., 3], ``frequency`` cells per metre."""
    scaled = points * frequency
    base = np.floor(scaled).astype(np.int64)
    fraction = (scaled - base).astype(np.float32)
    fraction = fraction * fraction * (3 - 2 * fraction)  # smoothstep: no creases at cell borders
    total = np.zeros(points.shape[:-1], np.float32)
    for corner in np.ndindex(2, 2, 2):
        weight = np.prod(np.where(np.array(corner) == 1, fraction, 1 - fraction), axis=-1)
        total += weight * _lattice(base + np.array(corner))
    return total


@functools.lru_cache(maxsize=2)
def painted(index: int = 0, height: int = 240, width: int = 320, views: int = 10) -> RenderedScene:
    """``rendered`` with every surface painted by world-anchored noise (three octaves, 6-27 cells per metre).

    The procedural world's flat colours give SIFT too few distinctive features for structure from motion (two
    of ten views register, or none). Paint that is a function of the world point is what a real textured
    surface is, the same in every view, so the cameras stay the truth and only the images gain texture.
    """
    scene = rendered(index, height, width, views)
    images = []
    cameras = zip(scene.images, scene.depths, scene.intrinsics, scene.cam_to_world, strict=True)
    for image, depth, intrinsics, pose in cameras:
        points = backproject(depth, intrinsics, pose)
        noise = sum(value_noise(points, frequency) for frequency in (6.0, 13.0, 27.0)) / 3
        images.append(np.clip(image * (0.35 + 1.3 * noise)[..., None], 0, 255).astype(np.uint8))
    return replace(scene, images=images)


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def distort_image(image: np.ndarray, intrinsics: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """What a camera with this lens distortion records of the pinhole ``image`` (inverse model by iteration)."""
    height, width = image.shape[:2]
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x_target, y_target = (u - cx) / fx, (v - cy) / fy
    x, y = x_target.copy(), y_target.copy()
    for _ in range(50):  # fixed point: find the undistorted point that distorts onto this pixel
        x_distorted, y_distorted = distort_normalized(x, y, coefficients)
        x, y = x + (x_target - x_distorted), y + (y_target - y_distorted)
    return sample_bilinear(image, fx * x + cx, fy * y + cy)


def read_shards(directory: Path) -> dict[str, tuple[SceneMeta, list[np.ndarray], list[np.ndarray | None]]]:
    """Every scene of a converted folder through the loader's own reader: key -> (meta, images, depths)."""
    shards = resolve_shards(str(directory))
    scenes = {}
    for scene in wds.DataPipeline(ShardList(shards.urls, SharedEpoch(), shuffle=False), *scene_reader()):
        images = [decode_rgb(scene.members[view.image]) for view in scene.meta.views]
        depths = [None if view.depth is None else decode_depth(scene.members[view.depth]) for view in scene.meta.views]
        scenes[scene.key] = (scene.meta, images, depths)
    return scenes


def read_masks(directory: Path) -> list[np.ndarray]:
    """The instance masks of the one scene of a converted folder, in view order."""
    shards = resolve_shards(str(directory))
    (scene,) = wds.DataPipeline(ShardList(shards.urls, SharedEpoch(), shuffle=False), *scene_reader())
    return [decode_mask(scene.members[view.mask]) for view in scene.meta.views]


def assert_cameras_round_trip(meta: SceneMeta, truth: RenderedScene, views: list[int] | None = None) -> None:
    """Rotation, translation and intrinsics within 1e-5, and every object centre on the same pixel."""
    views = list(range(len(truth.images))) if views is None else views
    assert meta.num_views == len(views)
    for converted, original in zip(meta.views, views, strict=True):
        intrinsics, pose = np.array(converted.intrinsics), np.array(converted.cam_to_world)
        np.testing.assert_allclose(intrinsics, truth.intrinsics[original], atol=1e-5)
        np.testing.assert_allclose(pose[:3, :3], truth.cam_to_world[original][:3, :3], atol=1e-5)
        np.testing.assert_allclose(pose[:3, 3], truth.cam_to_world[original][:3, 3], atol=1e-5)
        before, _ = project(truth.points, truth.intrinsics[original], truth.cam_to_world[original])
        after, _ = project(truth.points, intrinsics, pose)
        np.testing.assert_allclose(after, before, atol=1e-4)


def mean_abs_difference(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    crop = (slice(border, a.shape[0] - border), slice(border, a.shape[1] - border))
    return float(np.mean(np.abs(a[crop].astype(np.float32) - b[crop].astype(np.float32))))
