"""Procedural scene sampling: a furnished room and a handheld scan through it.

Every scene draws from its own generator seeded by ``(seed, split, index)``, so a scene does not
depend on which process renders it or on how many scenes come before it: generation parallelizes
and resumes without changing a byte.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from psfm.geometry import intrinsics_from_fov, look_at
from psfm.worlds.catalog import CATEGORIES, CATEGORY_BY_NAME, FLOOR_PATTERNS, PALETTE, Category
from psfm.worlds.scene import Camera, OrientedBox, Room, Scene, SceneObject

CAMERA_CLEARANCE = 0.35  # metres kept free around the camera path
WALL_CLEARANCE = 0.05


@dataclass
class WorldConfig:
    """Knobs of the procedural world. Defaults give small rooms that a 2-core CPU renders quickly."""

    seed: int = 0
    views_per_scene: int = 12
    height: int = 128
    width: int = 128
    room_size: tuple[float, float] = (3.5, 8.0)  # range of the room's width and depth, metres
    room_height: tuple[float, float] = (2.5, 3.2)
    floor_objects: tuple[int, int] = (4, 10)
    stacked_objects: tuple[int, int] = (0, 3)
    horizontal_fov_deg: tuple[float, float] = (55.0, 75.0)
    camera_height: tuple[float, float] = (1.1, 1.8)
    max_roll_deg: float = 6.0
    arc_deg: tuple[float, float] = (90.0, 240.0)  # how far around the room the scan walks


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one scene: independent of every other (seed, split, index)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(split.encode()), index)))


def scene_key(seed: int, split: str, index: int) -> str:
    return f"world_{split}_s{seed}_{index:07d}"


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def sample_room(rng: np.random.Generator, config: WorldConfig) -> Room:
    palette = list(PALETTE.values())
    base = rng.uniform(0.45, 0.85, size=3)
    floor_colors = (tuple(base * rng.uniform(0.85, 1.0, 3)), tuple(base * rng.uniform(0.45, 0.7, 3)))
    walls = tuple(
        tuple(np.clip(0.55 + 0.35 * rng.random() * np.asarray(palette[rng.integers(len(palette))]), 0, 1))
        for _ in range(4)
    )
    elevation, azimuth = rng.uniform(0.5, 1.2), rng.uniform(0, 2 * np.pi)
    light = (np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation))
    return Room(
        size=(_uniform(rng, config.room_size), _uniform(rng, config.room_size), _uniform(rng, config.room_height)),
        floor_pattern=str(rng.choice(FLOOR_PATTERNS)),
        floor_colors=floor_colors,
        floor_scale=float(rng.uniform(0.3, 0.8)),
        wall_colors=walls,
        ceiling_color=(0.9, 0.9, 0.88),
        light_direction=tuple(float(v) for v in light),
        ambient=float(rng.uniform(0.3, 0.45)),
    )


def sample_camera_path(rng: np.random.Generator, room: Room, config: WorldConfig) -> tuple[Camera, ...]:
    """A handheld scan: walk an arc around the room centre at varying height, looking inwards."""
    width, depth, _ = room.size
    radius = rng.uniform(0.22, 0.36) * min(width, depth)
    start, sweep = rng.uniform(0, 2 * np.pi), np.deg2rad(_uniform(rng, config.arc_deg)) * rng.choice([-1, 1])
    fov = _uniform(rng, config.horizontal_fov_deg)
    intrinsics = intrinsics_from_fov(config.width, config.height, fov)
    base_height = _uniform(rng, config.camera_height)
    cameras = []
    for step in np.linspace(0.0, 1.0, config.views_per_scene):
        angle = start + sweep * step + rng.normal(0, 0.05)
        eye = np.array([radius * np.cos(angle), radius * np.sin(angle), base_height + rng.normal(0, 0.08)])
        eye[:2] += rng.normal(0, 0.08, size=2)
        eye[2] = np.clip(eye[2], *config.camera_height)
        # look across the room: at a point beyond the centre, low enough to see the floor and furniture
        gaze = -eye[:2] / max(np.linalg.norm(eye[:2]), 1e-6)
        side = np.array([-gaze[1], gaze[0]]) * rng.normal(0, 0.6)
        target_xy = gaze * rng.uniform(0.3, 1.2) + side
        target = np.array([*target_xy, rng.uniform(0.2, 0.9)])
        pose = look_at(eye, target, roll_deg=float(rng.uniform(-config.max_roll_deg, config.max_roll_deg)))
        cameras.append(Camera(intrinsics, pose, config.height, config.width))
    return tuple(cameras)


def _footprint_radius(size: tuple[float, float, float]) -> float:
    return 0.5 * float(np.hypot(size[0], size[1]))


def _sample_size(rng: np.random.Generator, category: Category) -> tuple[float, float, float]:
    width = _uniform(rng, category.width)
    depth = width if category.round else _uniform(rng, category.depth)
    height = width if category.shape == "sphere" else _uniform(rng, category.height)
    return (width, depth, height)


def sample_objects(
    rng: np.random.Generator, room: Room, cameras: tuple[Camera, ...], config: WorldConfig
) -> tuple[SceneObject, ...]:
    """Place floor objects without overlap, clear of the walls and the camera path, then stack a few."""
    lower, upper = room.bounds
    camera_xy = np.array([camera.cam_to_world[:2, 3] for camera in cameras])
    colors = list(PALETTE)
    placed: list[SceneObject] = []

    def new_object(category: Category, center, size, yaw, supported_by) -> SceneObject:
        color = colors[rng.integers(len(colors))]
        box = OrientedBox(tuple(float(v) for v in center), size, float(yaw))
        return SceneObject(len(placed) + 1, category.name, category.shape, color, PALETTE[color], box, supported_by)

    wanted = int(rng.integers(config.floor_objects[0], config.floor_objects[1] + 1))
    for _ in range(wanted * 25):
        if len(placed) >= wanted:
            break
        category = CATEGORIES[rng.integers(len(CATEGORIES))]
        size = _sample_size(rng, category)
        radius = _footprint_radius(size)
        margin = radius + WALL_CLEARANCE
        if upper[0] - margin <= lower[0] + margin or upper[1] - margin <= lower[1] + margin:
            continue
        xy = rng.uniform([lower[0] + margin, lower[1] + margin], [upper[0] - margin, upper[1] - margin])
        if np.min(np.linalg.norm(camera_xy - xy, axis=1)) < radius + CAMERA_CLEARANCE:
            continue
        if any(
            np.linalg.norm(xy - np.asarray(o.box.center[:2])) < radius + _footprint_radius(o.box.size) + 0.05
            for o in placed
        ):
            continue
        yaw = 0.0 if category.round else rng.uniform(-np.pi, np.pi)
        placed.append(new_object(category, (*xy, size[2] / 2), size, yaw, 0))

    stackable = [c for c in CATEGORIES if c.stackable]
    wanted_stacked = int(rng.integers(config.stacked_objects[0], config.stacked_objects[1] + 1))
    supports = [o for o in placed if CATEGORY_BY_NAME[o.category].support]
    used_supports: set[int] = set()
    for _ in range(wanted_stacked * 10):
        free = [o for o in supports if o.instance_id not in used_supports]
        if not free or wanted_stacked == 0:
            break
        support = free[rng.integers(len(free))]
        category = stackable[rng.integers(len(stackable))]
        size = _sample_size(rng, category)
        if _footprint_radius(size) * 2 > 0.9 * min(support.box.size[:2]):
            continue
        top = support.box.center[2] + support.box.size[2] / 2
        yaw = 0.0 if category.round else rng.uniform(-np.pi, np.pi)
        if top + size[2] > room.size[2] - 0.2:
            continue
        placed.append(
            new_object(category, (*support.box.center[:2], top + size[2] / 2), size, yaw, support.instance_id)
        )
        used_supports.add(support.instance_id)
        wanted_stacked -= 1
    return tuple(placed)


def sample_scene(index: int, config: WorldConfig, split: str = "train") -> Scene:
    """Scene ``index`` of a split; deterministic in ``(config, split, index)``."""
    rng = scene_rng(config.seed, split, index)
    room = sample_room(rng, config)
    cameras = sample_camera_path(rng, room, config)
    objects = sample_objects(rng, room, cameras, config)
    return Scene(scene_key(config.seed, split, index), config.seed, room, objects, cameras)
