"""What probes must read out: scene facts from ``meta.json``, per-patch depth, relative camera poses.

Every fact is computed from the stored annotations and the fixed probe views, never from a model.
A fact a shard set does not annotate is ``MissingAnnotation``, naming the field, so that probe is
skipped with that message and the others run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from psfm.probes.scenes import ProbeScenes, view_order

SURFACE_MARGIN = 0.05  # metres: a surface this much nearer than an object's extent still counts as that object


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


def seen_object_count(scenes: ProbeScenes, categories: list[str]) -> SceneFact:
    """Objects per category (columns ``categories``) and in total that some context view *sees* (``seen_objects``).

    ``object_count`` counts the whole room, and a room's objects that no context view shows can only
    be guessed from the prior; this count asks only what the encoder was shown.
    """
    rows = []
    for index in range(len(scenes)):
        names = [obj.get("category") for obj, _ in seen_objects(scenes, index, occlusion=True)]
        rows.append([float(names.count(category)) for category in categories] + [float(len(names))])
    return SceneFact("seen_object_count", torch.tensor(rows), "objects", [*categories, "total"])


def seen_objects(scenes: ProbeScenes, index: int, occlusion: bool = False) -> list[tuple[dict, np.ndarray]]:
    """(object, world centre in metres) of scene ``index``'s objects whose box centre some context view sees.

    Seen: the centre is in front of the camera (z > 5 cm) and projects inside the image (u < W,
    v < H). With ``occlusion`` and depth on the views, the surface the view shows at that pixel must
    also not be nearer than the centre by more than the box's half-diagonal (+ 5 cm): a nearer
    surface is something else standing in front. A pixel of unknown depth (0 or NaN) hides nothing, and a
    box without ``axes_lengths`` gets the frustum test alone. Objects without a box centre cannot be
    placed and are left out.
    """
    meta = scenes.metas[index]
    objects = meta.get("objects")
    if objects is None:
        raise MissingAnnotation(f"objects is missing in scene {scenes.keys[index]}")
    world_to_camera = _context_world_to_camera(scenes, index)  # C 4 4, metres
    intrinsics = scenes.intrinsics[index, : scenes.num_context].double().numpy()
    depth = (
        scenes.depth[index, : scenes.num_context].double().numpy() if occlusion and scenes.depth is not None else None
    )
    height, width = scenes.image_size
    out = []
    for obj in objects:
        box = obj.get("box") or {}
        if "centroid" not in box:
            continue
        centre = np.asarray(box["centroid"], dtype=np.float64)
        camera = world_to_camera @ np.append(centre, 1.0)  # C 4
        z = camera[:, 2]
        pixel = np.einsum("cij,cj->ci", intrinsics, camera[:, :3] / np.where(z > 0.05, z, 1.0)[:, None])
        seen = (z > 0.05) & (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
        if depth is not None and seen.any() and box.get("axes_lengths"):  # no size: no telling its own surface
            extent = 0.5 * float(np.linalg.norm(box["axes_lengths"])) + SURFACE_MARGIN
            for view in np.flatnonzero(seen):
                surface = depth[view, int(pixel[view, 1]), int(pixel[view, 0])]
                seen[view] = not surface > 0 or surface >= z[view] - extent  # unknown (0, NaN) hides nothing
        if seen.any():
            out.append((obj, centre))
    return out


def _context_world_to_camera(scenes: ProbeScenes, index: int) -> np.ndarray:
    """[C, 4, 4] metric world-to-camera of the context views: the stored reference pose times the normalized ones."""
    views = scenes.metas[index].get("views") or []
    if not views or any("cam_to_world" not in view for view in views):
        raise MissingAnnotation(f"views[].cam_to_world is missing in scene {scenes.keys[index]}")
    reference = np.asarray(views[view_order(scenes.keys[index], len(views))[0]]["cam_to_world"])
    relative = scenes.cam_to_world[index, : scenes.num_context].double().numpy().copy()
    relative[:, :3, 3] *= float(scenes.pose_scale[index])
    return np.linalg.inv(reference @ relative)


def categories_of(scenes: ProbeScenes) -> list[str]:
    """Sorted object categories present in a split (the count probe's columns)."""
    return sorted({obj.get("category", "?") for meta in scenes.metas for obj in meta.get("objects") or []})


def camera_extent(scenes: ProbeScenes) -> SceneFact:
    """Largest distance between two context cameras, in metres: how far the capture the encoder saw spreads."""
    context = scenes.cam_to_world[:, : scenes.num_context, :3, 3] * scenes.pose_scale[:, None, None]  # S C 3
    extent = torch.cdist(context, context).flatten(1).amax(1)
    return SceneFact("camera_extent", extent[:, None], "m", ["camera_extent"])


FACT_BUILDERS: dict[str, Callable[..., SceneFact]] = {
    "floor_area": floor_area,
    "room_height": room_height,
    "object_count": object_count,
    "seen_object_count": seen_object_count,
    "camera_extent": camera_extent,
}
PER_CATEGORY = {"object_count", "seen_object_count"}  # facts whose columns are the train split's categories


def build_fact(name: str, scenes: ProbeScenes, categories: list[str]) -> SceneFact:
    """Fact ``name`` of every scene (``categories``: the count columns, fixed by the train split)."""
    if name not in FACT_BUILDERS:
        raise ValueError(f"probe: unknown fact {name!r}; known: {list(FACT_BUILDERS)}")
    return FACT_BUILDERS[name](scenes, categories) if name in PER_CATEGORY else FACT_BUILDERS[name](scenes)


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
