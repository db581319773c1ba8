"""Fixed probe views: the same views of the same scenes for every encoder a probe run compares.

Per scene, the stored views are put in an order drawn from the scene key (so it does not depend on
the shard order, the encoder or the run):

    order[0]            the reference view (context view 0: the frame target poses live in)
    order[:C]           the context views every encoder sees (view-invariance subset A)
    order[C:2C]         a disjoint second subset of the same scene (view-invariance subset B)
    order[C:]           target views: never seen by the encoder, used by the target-depth probe

Views are fitted to the encoder's image size exactly as the training loader fits them (resize to
cover, centre crop, intrinsics updated): ``SceneBatcher.decode``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import webdataset as wds

from psfm.datamodules.batching import SceneBatcher, normalize_poses
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.format import ShardFormatError
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.skips import SKIPS
from psfm.datamodules.stages import ShardList, scene_reader
from psfm.datamodules.views import ViewSampling
from psfm.encoders.inputs import check_input, depth_as_image
from psfm.progress import track


@dataclass
class ProbeScenes:
    """S scenes with V fixed views each, in the order described in the module docstring.

    Attributes:
        keys: S scene keys.
        images: [S, V, 3, H, W] uint8 (kept compact; ``float_images`` converts a slice).
        intrinsics: [S, V, 3, 3] pixels at (H, W).
        cam_to_world: [S, V, 4, 4] normalized to view 0, translations divided by ``pose_scale``.
        pose_scale: [S] metres per normalized unit.
        depth: [S, V, H, W] metres (0 = unknown), or None when the shards have no depth.
        metas: S raw ``meta.json`` records (objects, room: the scene facts probes read).
        num_context: C.
        stored_size: (H, W) the shards store, when all scenes agree (the report says when it was refitted).
        skipped: scenes left out, with reasons (too few views, no poses, undecodable).
    """

    keys: list[str]
    images: torch.Tensor
    intrinsics: torch.Tensor
    cam_to_world: torch.Tensor
    pose_scale: torch.Tensor
    depth: torch.Tensor | None
    metas: list[dict]
    num_context: int
    stored_size: tuple[int, int] | None
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_views(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def float_images(self, scenes: slice | torch.Tensor, views: slice | Sequence[int]) -> torch.Tensor:
        """[s, v, 3, H, W] float in [0, 1] for a slice of scenes and a list/slice of view positions."""
        return self.images[scenes][:, views].float().div_(255.0)

    def encoder_inputs(
        self, input_kind: str, scenes: slice | torch.Tensor, views: slice | Sequence[int]
    ) -> torch.Tensor:
        """[s, v, 3, H, W] what an encoder of ``input_kind`` sees: ``float_images``, or the views' depth as images."""
        if check_input(input_kind) == "images":
            return self.float_images(scenes, views)
        if self.depth is None:
            raise ValueError("a depth-input encoder needs probe shards whose views carry depth")
        return depth_as_image(self.depth[scenes][:, views][:, :, None].float())


def view_order(key: str, num_views: int) -> list[int]:
    """A permutation of a scene's stored views drawn from its key alone (stable across runs and machines)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    order = list(range(num_views))
    random.Random(seed).shuffle(order)
    return order


def load_probe_scenes(
    source: str,
    image_size: Sequence[int],
    num_context: int = 3,
    num_views: int = 8,
    max_scenes: int | None = None,
    progress: bool = True,
    description: str = "probe views",
) -> ProbeScenes:
    """Read ``source`` shards in order and keep ``num_views`` fixed views of each posed scene.

    Scenes with fewer than ``num_views`` views or without poses are skipped and counted (every
    probe needs the reference frame); an undecodable scene is skipped with its reason.
    """
    if num_views < 2 * num_context:
        raise ValueError(f"probe views: num_views={num_views} must be >= 2 * num_context={2 * num_context}")
    shards = resolve_shards(source)
    batcher = SceneBatcher(
        1, ViewSampling(min_views=1, max_views=num_views), tuple(image_size), SharedEpoch(), load_depth=True
    )
    pipeline = wds.DataPipeline(
        ShardList(shards.urls, SharedEpoch(), shuffle=False), *scene_reader(shards.scene_counts)
    )
    before = dict(SKIPS.reasons)
    keys, images, intrinsics, poses, scales, depths, metas, sizes = [], [], [], [], [], [], [], set()
    has_depth = True
    skipped: dict[str, int] = {}
    total = max_scenes or shards.num_samples or 0
    for scene in track(pipeline, total, description, "scenes", enabled=progress):
        if max_scenes is not None and len(keys) >= max_scenes:
            break
        reason = None
        if scene.meta.num_views < num_views:
            reason = f"fewer than {num_views} views"
        elif scene.meta.pose_source == "none":
            reason = "no poses"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        order = view_order(scene.key, scene.meta.num_views)[:num_views]
        try:
            decoded = batcher.decode(scene, order, random.Random(0))
        except ShardFormatError as error:
            SKIPS.add("decode", str(error))
            continue
        normalized, scale = normalize_poses(np.stack(decoded.cam_to_world))
        keys.append(scene.key)
        images.append(np.stack(decoded.images).transpose(0, 3, 1, 2))
        intrinsics.append(np.stack(decoded.intrinsics))
        poses.append(normalized)
        scales.append(scale)
        has_depth &= all(scene.meta.views[i].depth is not None for i in order)
        depths.append(np.stack(decoded.depths))
        metas.append(scene.meta.raw)
        sizes.add(tuple(scene.meta.image_size))
    SKIPS.drain()
    for reason, count in SKIPS.reasons.items():
        if count - before.get(reason, 0):
            skipped[reason] = count - before.get(reason, 0)
    if not keys:
        raise ValueError(f"{source}: no scene with >= {num_views} posed views to probe (skipped: {skipped})")
    return ProbeScenes(
        keys=keys,
        images=torch.from_numpy(np.stack(images)),
        intrinsics=torch.from_numpy(np.stack(intrinsics)).float(),
        cam_to_world=torch.from_numpy(np.stack(poses)).float(),
        pose_scale=torch.tensor(scales, dtype=torch.float32),
        depth=torch.from_numpy(np.stack(depths)).float() if has_depth else None,
        metas=metas,
        num_context=num_context,
        stored_size=sizes.pop() if len(sizes) == 1 else None,
        skipped=skipped,
    )
