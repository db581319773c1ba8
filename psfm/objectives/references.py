"""Non-learned answers to "what does the target view's feature field look like?", to judge the loss by.

* ``copy_nearest``: the teacher features of the context view whose camera is closest to the
  target's (translation distance + rotation angle in radians, normalized units).
* ``mean_context``: the per-patch mean of the context views' teacher features.

A decoder that has learned nothing about 3D can reach ``mean_context``; beating ``copy_nearest``
means it predicts how the view changes with the camera.
"""

from __future__ import annotations

import torch

from psfm.types import MultiViewBatch


def camera_distance(cam_to_world_a: torch.Tensor, cam_to_world_b: torch.Tensor) -> torch.Tensor:
    """[..., A, 4, 4] and [..., B, 4, 4] -> [..., A, B]: translation distance + rotation angle (rad).

    Always float32, also under bf16/fp16 autocast: bf16 would blur angles by ~0.1 rad and pick wrong neighbours.
    """
    with torch.autocast(cam_to_world_a.device.type, enabled=False):
        cam_to_world_a, cam_to_world_b = cam_to_world_a.float(), cam_to_world_b.float()
        translation = torch.cdist(cam_to_world_a[..., :3, 3], cam_to_world_b[..., :3, 3])
        relative = cam_to_world_a[..., :, None, :3, :3].transpose(-1, -2) @ cam_to_world_b[..., None, :, :3, :3]
        trace = relative.diagonal(dim1=-2, dim2=-1).sum(-1)
        angle = torch.arccos(((trace - 1) / 2).clamp(-1.0, 1.0))
    return translation + angle


def copy_nearest(features: torch.Tensor, batch: MultiViewBatch) -> torch.Tensor:
    """features [B, V, N, Dt] of every view -> [B, T, N, Dt]: each target gets its nearest context view's."""
    target_poses = batch.gather_views(batch.target_index, batch.cam_to_world)
    context_poses = batch.gather_views(batch.context_index, batch.cam_to_world)
    nearest = camera_distance(target_poses, context_poses).argmin(-1)  # B T, index into C
    return batch.gather_views(torch.gather(batch.context_index, 1, nearest), features)


def mean_context(features: torch.Tensor, batch: MultiViewBatch) -> torch.Tensor:
    """features [B, V, N, Dt] -> [B, T, N, Dt]: the context views' per-patch mean, for every target."""
    mean = batch.gather_views(batch.context_index, features).mean(1, keepdim=True)
    return mean.expand(-1, batch.target_index.shape[1], -1, -1)
