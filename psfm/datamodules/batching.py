"""Group parsed scenes into ``MultiViewBatch`` es: choose views, decode only those, fit, normalize poses."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from psfm.datamodules.codecs import decode_depth, decode_mask, decode_rgb
from psfm.datamodules.covisibility import SceneCameras
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.format import ShardFormatError
from psfm.datamodules.pose_noise import PoseNoise, perturb_poses
from psfm.datamodules.skips import SKIPS, DrawLimit
from psfm.datamodules.stages import ParsedScene, stage_rng
from psfm.datamodules.transforms import fit_view
from psfm.datamodules.views import ViewSampling
from psfm.types import MultiViewBatch


@dataclass
class DecodedScene:
    """The chosen views of one scene, fitted to the output size (lists of length V)."""

    key: str
    pose_source: str
    view_ids: list[int]
    images: list[np.ndarray]
    intrinsics: list[np.ndarray]
    cam_to_world: list[np.ndarray] | None
    depths: list[np.ndarray] | None
    masks: list[np.ndarray] | None

    PER_VIEW = ("view_ids", "images", "intrinsics", "cam_to_world", "depths", "masks")  # not a field: no annotation

    def truncate(self, num_views: int) -> None:
        """Keep the first ``num_views`` (still a valid draw: ``ViewSampling.select`` order allows any prefix)."""
        self.reorder(list(range(num_views)))

    def reorder(self, order: list[int]) -> None:
        """Keep the views at positions ``order``, in that order."""
        for name in self.PER_VIEW:
            values = getattr(self, name)
            if values is not None:
                setattr(self, name, [values[position] for position in order])


def normalize_poses(cam_to_world: np.ndarray) -> tuple[np.ndarray, float]:
    """Express poses [V, 4, 4] in view 0's camera frame, with translations divided by a scene scale.

    The scale is the mean distance of cameras 1..V-1 from camera 0 (1 when they coincide), so
    normalized scenes have unit camera spread whatever their metric size or SfM scale ambiguity.

    Returns:
        normalized [V, 4, 4] and the scale (metres per normalized unit when poses are metric).
    """
    relative = np.linalg.inv(cam_to_world[0]) @ cam_to_world
    distances = np.linalg.norm(relative[1:, :3, 3], axis=-1)
    scale = float(distances.mean()) if distances.size and distances.mean() > 1e-6 else 1.0
    relative[:, :3, 3] /= scale
    return relative, scale


class SceneBatcher:
    """webdataset stage: ``ParsedScene`` stream -> ``MultiViewBatch`` stream.

    V is drawn once per batch; a scene with fewer views lowers V for its whole batch (earlier
    scenes keep a prefix of their random selection), a scene with fewer than ``min_views`` is
    skipped and counted, and so is one whose images fail to decode.

    ``carry_final_skips`` (finite streams) holds each batch back until the next is made, so skips that
    happen after the last full batch (a truncated last shard, bad last scenes) still leave the process
    inside the final batch, and an epoch's batches account for every scene it lost.
    """

    def __init__(
        self,
        batch_size: int,
        views: ViewSampling,
        image_size: tuple[int, int],
        epoch: SharedEpoch,
        seed: int = 0,
        crop: str = "center",
        load_depth: bool = False,
        load_mask: bool = False,
        partial: bool = True,
        pose_noise: PoseNoise | None = None,
        draw_limit: DrawLimit | None = None,
        carry_final_skips: bool = False,
    ):
        self.batch_size, self.views, self.image_size = batch_size, views, tuple(image_size)
        self.draw_limit = draw_limit  # told of every batch: the shard stage's count of fruitless draws restarts
        self.pose_noise = pose_noise if pose_noise is not None and pose_noise.active else None
        self.epoch, self.seed, self.crop = epoch, seed, crop
        self.load_depth, self.load_mask, self.partial = load_depth, load_mask, partial
        self.carry_final_skips = carry_final_skips

    def __call__(self, source: Iterator[ParsedScene]) -> Iterator[MultiViewBatch]:
        if not self.carry_final_skips:
            yield from self.batches(source)
            return
        held = None
        for batch in self.batches(source):
            if held is not None:
                yield held
            held = batch
        if held is not None:
            held.skipped += SKIPS.drain()
            yield held

    def batches(self, source: Iterator[ParsedScene]) -> Iterator[MultiViewBatch]:
        """The batches of ``source``, each carrying the skips since the previous one."""
        rng = stage_rng(self.seed, self.epoch.get(), "views")
        # its own stream, so turning pose noise on changes the poses and not which views, crops or scenes follow
        noise_rng = stage_rng(self.seed, self.epoch.get(), "pose_noise")
        pending: list[DecodedScene] = []
        batch_views = self.views.num_views(rng, self.views.max_views)
        for scene in source:
            if scene.meta.num_views < self.views.min_views:
                SKIPS.add(
                    "too_few_views",
                    f"{scene.url}:{scene.key}: {scene.meta.num_views} views, "
                    f"fewer than views.min_views={self.views.min_views}",
                )
                continue
            num_views = min(batch_views, scene.meta.num_views)
            try:
                cache: dict[str, np.ndarray] = {}  # depth maps decoded once, whether select or decode asks first
                decoded = self.decode(scene, self.select(scene, num_views, rng, cache), rng, cache)
            except ShardFormatError as error:
                SKIPS.add("decode", str(error))
                continue
            if num_views < batch_views:
                batch_views = num_views
                for earlier in pending:
                    earlier.truncate(num_views)
            pending.append(decoded)
            if len(pending) == self.batch_size:
                if self.draw_limit is not None:
                    self.draw_limit.batch()
                yield self.collate(pending, noise_rng)
                pending = []
                batch_views = self.views.num_views(rng, self.views.max_views)
        if pending and self.partial:
            yield self.collate(pending, noise_rng)

    def select(
        self, scene: ParsedScene, num_views: int, rng: random.Random, cache: dict[str, np.ndarray] | None = None
    ) -> list[int]:
        """The scene's views for this batch; ``views.target_overlap`` needs its cameras (and depth, if loaded).

        ``cache`` (member name -> decoded depth map) keeps the reference view's depth for ``decode``.
        """
        if not self.views.target_overlap:
            return self.views.select(rng, scene.meta.num_views, num_views)
        metric = self.load_depth and scene.meta.metric_scale != "none"  # depth maps in the poses' units

        def reference_depth(view_id: int) -> float | None:
            name = scene.meta.views[view_id].depth
            if not name:
                return None
            depth = self._depth(scene, name, cache)
            return float(np.median(depth[depth > 0])) if (depth > 0).any() else None

        cameras = SceneCameras.from_meta(scene.meta)
        return self.views.select(rng, scene.meta.num_views, num_views, cameras, reference_depth if metric else None)

    @staticmethod
    def _depth(scene: ParsedScene, name: str, cache: dict[str, np.ndarray] | None) -> np.ndarray:
        """The depth member ``name`` decoded, from ``cache`` when already there (and kept there)."""
        if cache is not None and name in cache:
            return cache[name]
        depth = decode_depth(scene.members[name], f"{scene.url}:{scene.key}.{name}")
        if cache is not None:
            cache[name] = depth
        return depth

    def decode(
        self, scene: ParsedScene, view_ids: list[int], rng, cache: dict[str, np.ndarray] | None = None
    ) -> DecodedScene:
        """Decode and fit the chosen views; raises ``ShardFormatError`` naming the broken member."""
        where = f"{scene.url}:{scene.key}"
        images, intrinsics, depths, masks = [], [], [], []
        for view_id in view_ids:
            view = scene.meta.views[view_id]
            rgb = decode_rgb(scene.members[view.image], f"{where}.{view.image}")
            if rgb.shape[:2] != scene.meta.image_size:
                raise ShardFormatError(
                    f"{where}.{view.image}: image is {rgb.shape[:2]}, meta.json says {scene.meta.image_size}"
                )
            depth = mask = None
            if self.load_depth:
                depth = self._depth(scene, view.depth, cache) if view.depth else np.zeros(rgb.shape[:2], np.float32)
            if self.load_mask:
                mask = (
                    decode_mask(scene.members[view.mask], f"{where}.{view.mask}")
                    if view.mask
                    else np.zeros(rgb.shape[:2], np.int64)
                )
            rgb, camera, depth, mask = fit_view(
                rgb, np.asarray(view.intrinsics), self.image_size, self.crop, rng, depth, mask
            )
            images.append(rgb)
            intrinsics.append(camera)
            depths.append(depth)
            masks.append(mask)
        poses = None
        if scene.meta.pose_source != "none":
            poses = [np.asarray(scene.meta.views[i].cam_to_world, dtype=np.float64) for i in view_ids]
        return DecodedScene(
            scene.key,
            scene.meta.pose_source,
            list(view_ids),
            images,
            intrinsics,
            poses,
            depths if self.load_depth else None,
            masks if self.load_mask else None,
        )

    def collate(self, scenes: list[DecodedScene], rng: random.Random | None = None) -> MultiViewBatch:
        num_views = len(scenes[0].view_ids)
        num_context = self.views.num_context(num_views)
        context_index, target_index = [], []
        for scene in scenes:  # batch order (capture order for windows) and where context and targets sit in it
            order, context, targets = self.views.arrange(scene.view_ids, num_context)
            scene.reorder(order)
            context_index.append(context)
            target_index.append(targets)
        images = torch.from_numpy(np.stack([np.stack(s.images) for s in scenes]))  # B V H W 3 uint8
        poses, scales = [], []
        for scene in scenes:
            if scene.cam_to_world is None:
                poses.append(np.tile(np.eye(4), (num_views, 1, 1)))
                scales.append(1.0)
            else:
                normalized, scale = normalize_poses(np.stack(scene.cam_to_world))
                if self.pose_noise is not None and rng is not None:
                    normalized = perturb_poses(normalized, self.pose_noise, rng)
                poses.append(normalized)
                scales.append(scale)
        batch_size = len(scenes)
        return MultiViewBatch(
            images=images.permute(0, 1, 4, 2, 3).float().div_(255.0),
            intrinsics=torch.from_numpy(np.stack([np.stack(s.intrinsics) for s in scenes])).float(),
            cam_to_world=torch.from_numpy(np.stack(poses)).float(),
            context_index=torch.tensor(context_index, dtype=torch.long).view(batch_size, num_context),
            target_index=torch.tensor(target_index, dtype=torch.long).view(batch_size, num_views - num_context),
            pose_scale=torch.tensor(scales, dtype=torch.float32),
            has_pose=torch.tensor([s.cam_to_world is not None for s in scenes]),
            view_ids=torch.tensor([s.view_ids for s in scenes], dtype=torch.long),
            depth=None
            if not self.load_depth
            else torch.from_numpy(np.stack([np.stack(s.depths) for s in scenes])).unsqueeze(2),
            instance=None
            if not self.load_mask
            else torch.from_numpy(np.stack([np.stack(s.masks) for s in scenes])).unsqueeze(2),
            scene_keys=[s.key for s in scenes],
            pose_sources=[s.pose_source for s in scenes],
            skipped=SKIPS.drain(),
        )
