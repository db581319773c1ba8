"""What probes must read out: scene facts from ``meta.json``, per-patch depth, relative camera poses.

Every fact is computed from the stored annotations and the fixed probe views, never from a model.
A fact a shard set does not annotate is ``MissingAnnotation``, naming the field, so that probe is
skipped with that message and the others run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from psfm.probes.scenes import ProbeScenes


class MissingAnnotation(ValueError):
    """The shards lack a field a probe needs; the message names it."""


@dataclass
class SceneFact:
    """One regression target per scene: ``values`` [S, K] (K outputs, e.g. one count per category)."""

    name: str
    values: torch.Tensor
    unit: str
    columns: list[str]


def _room(scenes: ProbeScenes, field: str) -> list[dict]:
    rooms = [meta.get("room") for meta in scenes.metas]
    missing = [key for key, room in zip(scenes.keys, rooms, strict=True) if not room or room.get(field) is None]
    if missing:
        raise MissingAnnotation(f"room.{field} is missing in {len(missing)} scene(s), e.g. {missing[0]}")
    return rooms


def floor_area(scenes: ProbeScenes) -> SceneFact:
    rooms = _room(scenes, "floor_area")
    return SceneFact("floor_area", torch.tensor([[float(r["floor_area"])] for r in rooms]), "m²", ["floor_area"])


def room_height(scenes: ProbeScenes) -> SceneFact:
    rooms = _room(scenes, "size")
    return SceneFact("room_height", torch.tensor([[float(r["size"][2])] for r in rooms]), "m", ["room_height"])


def object_count(scenes: ProbeScenes, categories: list[str]) -> SceneFact:
    """Objects per category (columns ``categories``, fixed by the train split) and their total."""
    rows = []
    for key, meta in zip(scenes.keys, scenes.metas, strict=True):
        objects = meta.get("objects")
        if objects is None:
            raise MissingAnnotation(f"objects is missing in scene {key}")
        names = [obj.get("category") for obj in objects]
        rows.append([float(names.count(category)) for category in categories] + [float(len(names))])
    return SceneFact("object_count", torch.tensor(rows), "objects", [*categories, "total"])


def categories_of(scenes: ProbeScenes) -> list[str]:
    """Sorted object categories present in a split (the count probe's columns)."""
    return sorted({obj.get("category", "?") for meta in scenes.metas for obj in meta.get("objects") or []})


def camera_extent(scenes: ProbeScenes) -> SceneFact:
    """Largest distance between two context cameras, in metres: how far the capture the encoder saw spreads."""
    context = scenes.cam_to_world[:, : scenes.num_context, :3, 3] * scenes.pose_scale[:, None, None]  # S C 3
    extent = torch.cdist(context, context).flatten(1).amax(1)
    return SceneFact("camera_extent", extent[:, None], "m", ["camera_extent"])


def patch_depth_median(depth: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """depth [..., H, W] metres (0 unknown) -> [..., h * w] median valid depth per patch (NaN where none)."""
    rows, cols = grid
    height, width = depth.shape[-2:]
    patches = depth.unflatten(-2, (rows, height // rows)).unflatten(-1, (cols, width // cols))  # ... h ph w pw
    patches = patches.transpose(-3, -2).flatten(-2)  # ... h w (ph pw)
    patches = torch.where(patches > 0, patches, torch.nan)
    return patches.nanmedian(-1).values.flatten(-2)


def relative_pose(cam_to_world: torch.Tensor, first: int, second: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose of view ``second`` in view ``first``'s camera frame: rotation [S, 3, 3], unit translation [S, 3]."""
    relative = torch.linalg.inv(cam_to_world[:, first]) @ cam_to_world[:, second]
    translation = relative[:, :3, 3]
    return relative[:, :3, :3], translation / translation.norm(dim=-1, keepdim=True).clamp_min(1e-8)
