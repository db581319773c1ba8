"""Per-patch camera rays: what a decoder knows about a view it must synthesize."""

from __future__ import annotations

import torch


def patch_centres(grid: tuple[int, int], image_size: tuple[int, int], device=None) -> torch.Tensor:
    """[h * w, 2] pixel (u, v) of every patch centre, row-major, OpenCV pixel-centre convention."""
    (rows, cols), (height, width) = grid, image_size
    v = (torch.arange(rows, device=device, dtype=torch.float32) + 0.5) * (height / rows)
    u = (torch.arange(cols, device=device, dtype=torch.float32) + 0.5) * (width / cols)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu.flatten(), vv.flatten()], dim=-1)


def camera_rays(intrinsics: torch.Tensor, grid: tuple[int, int], image_size: tuple[int, int]) -> torch.Tensor:
    """intrinsics [..., 3, 3] -> unit camera-frame ray directions through patch centres [..., N, 3]."""
    centres = patch_centres(grid, image_size, intrinsics.device)
    pixels = torch.cat([centres, torch.ones_like(centres[:, :1])], dim=-1)  # N 3
    rays = pixels @ torch.linalg.inv(intrinsics.float()).transpose(-1, -2)
    return rays / rays.norm(dim=-1, keepdim=True)


def plucker_rays(
    intrinsics: torch.Tensor, cam_to_world: torch.Tensor, grid: tuple[int, int], image_size: tuple[int, int]
) -> torch.Tensor:
    """[..., N, 6] Plücker coordinates (d, o × d) of patch rays in the world (view-0) frame."""
    directions = camera_rays(intrinsics, grid, image_size) @ cam_to_world[..., :3, :3].float().transpose(-1, -2)
    origins = cam_to_world[..., None, :3, 3].float().expand_as(directions)
    return torch.cat([directions, torch.cross(origins, directions, dim=-1)], dim=-1)
