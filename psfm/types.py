"""Typed interfaces shared across psfm, with the one shape legend every docstring uses.

Shape letters:
    B  scenes in a batch
    V  views per scene (context + target), equal within a batch
    C  context views, T target views (C + T = V)
    H, W  image height and width in pixels
    h, w  patch-grid height and width
    N  tokens per view (h * w)
    L  latent tokens per scene (per sample in ``psfm.adapters``, its scenes' latents concatenated)
    D  channel width
    Q  visual tokens per sample in a vision-language model (the adapter's queries)
    E  a vision-language model's hidden size
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch

POSE_SOURCES = ("gt", "colmap", "predicted", "none")


@dataclass
class MultiViewBatch:
    """A batch of scenes, each seen from V views, as every pretraining objective consumes it.

    Poses are normalized per scene: view 0's camera is the world frame (its ``cam_to_world`` is the
    identity) and translations are divided by ``pose_scale``, the mean distance of the sampled
    cameras from camera 0 (1 when they all coincide). Multiply a normalized length by
    ``pose_scale`` to get metres back. ``depth`` stays metric (metres) so probes read true units.

    Attributes:
        images: [B, V, 3, H, W] float in [0, 1].
        intrinsics: [B, V, 3, 3] pixels, matching ``images`` after resizing/cropping.
        cam_to_world: [B, V, 4, 4] OpenCV camera-to-world, normalized to view 0 (see above).
        context_index: [B, C] long, indices into V; column 0 is always view 0.
        target_index: [B, T] long, indices into V (T may be 0).
        pose_scale: [B] metres per normalized unit.
        has_pose: [B] bool; False where the source recorded no poses (``cam_to_world`` is then identity).
        view_ids: [B, V] long, which stored views of the scene were sampled (in batch order).
        depth: [B, V, 1, H, W] float metres (0 = unknown), or None when not loaded.
        instance: [B, V, 1, H, W] long instance ids (0 = background), or None when not loaded.
        clean_images: [B, V, 3, H, W] the images before colour jitter, or None when ``images`` were not
            jittered. Teachers read these (``teacher_images``): a per-view random jitter is something no
            decoder can predict from the context, so it must not be in the targets.
        scene_keys: B scene identifiers.
        pose_sources: B of ``POSE_SOURCES``.
        skipped: scenes the producing worker skipped or lost (corrupt, invalid, missing from a short shard)
            since its previous batch; summed over batches, workers and ranks this is the run's skip count.
    """

    images: torch.Tensor
    intrinsics: torch.Tensor
    cam_to_world: torch.Tensor
    context_index: torch.Tensor
    target_index: torch.Tensor
    pose_scale: torch.Tensor
    has_pose: torch.Tensor
    view_ids: torch.Tensor
    depth: torch.Tensor | None = None
    instance: torch.Tensor | None = None
    clean_images: torch.Tensor | None = None
    scene_keys: list[str] = field(default_factory=list)
    pose_sources: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    @property
    def num_views(self) -> int:
        return self.images.shape[1]

    @property
    def teacher_images(self) -> torch.Tensor:
        """[B, V, 3, H, W]: what teachers see, the un-jittered images (``images`` when nothing was jittered)."""
        return self.images if self.clean_images is None else self.clean_images

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MultiViewBatch:
        """Move every tensor field; Lightning calls this through ``transfer_batch_to_device``."""
        moved = {
            f.name: value.to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)

    def pin_memory(self) -> MultiViewBatch:
        """Pinned copies of the tensors, so ``DataLoader(pin_memory=True)`` keeps the type."""
        pinned = {
            f.name: value.pin_memory() for f in fields(self) if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **pinned)

    def gather_views(self, index: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        """Select views of a per-view tensor [B, V, ...] by an index [B, K] -> [B, K, ...]."""
        expanded = index.view(*index.shape, *([1] * (tensor.dim() - 2))).expand(-1, -1, *tensor.shape[2:])
        return torch.gather(tensor, 1, expanded)
