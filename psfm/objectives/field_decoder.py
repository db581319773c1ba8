"""The feature-field decoder: latents + one ray token per patch of a view -> per-patch features.

Each view to synthesize is decoded independently: the sequence is [L latents; N ray tokens].
A ray token is Linear(3 -> D) of the unit camera-frame ray through its patch (intrinsics only).
Where the camera sits enters one of two ways (``camera_encoding``):

* ``prope``: camera-relative attention (PRoPE). Ray tokens carry P = K̃·world_to_cam of their
  view, latents the identity, so latents behave as world-frame tokens each camera "looks at".
* ``plucker``: the ray token also embeds the world-frame Plücker ray (d, o × d); attention is plain.

Ray tokens also carry 2D RoPE of their patch position, so neighbouring patches know they are near.
"""

from __future__ import annotations

import torch
from torch import nn

from psfm.layers import PRoPE, RoPE2D, TokenGeometry, Transformer, patch_positions
from psfm.objectives.rays import camera_rays, plucker_rays

CAMERA_ENCODINGS = ("prope", "plucker")


class FieldDecoder(nn.Module):
    """Args:
    dim, depth, num_heads: transformer shape (D equals the encoder's latent width).
    camera_encoding: ``prope`` or ``plucker`` (see module docstring).
    """

    def __init__(
        self,
        dim: int = 768,
        depth: int = 6,
        num_heads: int = 12,
        camera_encoding: str = "prope",
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        rope_base: float = 100.0,
        backend: str = "auto",
    ):
        super().__init__()
        if camera_encoding not in CAMERA_ENCODINGS:
            raise ValueError(f"camera_encoding must be one of {CAMERA_ENCODINGS}, got {camera_encoding!r}")
        head_dim = dim // num_heads
        if camera_encoding == "prope" and head_dim < 8:
            raise ValueError(f"prope needs >= 8 channels per head, got {head_dim} (dim {dim}, {num_heads} heads)")
        self.dim, self.camera_encoding = dim, camera_encoding
        self.ray_embed = nn.Linear(3 if camera_encoding == "prope" else 9, dim)
        # PRoPE on the leading half of each head's channels, RoPE on the rest (both multiples of 4)
        self.camera_dims = (head_dim // 2) // 4 * 4 if camera_encoding == "prope" else 0
        rope_dims = (head_dim - self.camera_dims) // 4 * 4
        self.rope = RoPE2D(rope_dims, rope_base)
        self.transformer = Transformer(dim, depth, num_heads, mlp_ratio, qk_norm, backend)

    def forward(
        self,
        latents: torch.Tensor,
        intrinsics: torch.Tensor,
        cam_to_world: torch.Tensor,
        grid: tuple[int, int],
        image_size: tuple[int, int],
    ) -> torch.Tensor:
        """Synthesize features of K views per scene.

        Args:
            latents: [B, L, D].
            intrinsics: [B, K, 3, 3] pixels at ``image_size``; cam_to_world: [B, K, 4, 4] in the latents' frame.
        Returns:
            [B, K, N, D] ray-token outputs, N = h * w of ``grid``.
        """
        batch, views = intrinsics.shape[:2]
        num_latents = latents.shape[1]
        rays = camera_rays(intrinsics, grid, image_size)  # B K N 3
        if self.camera_encoding == "plucker":
            rays = torch.cat([rays, plucker_rays(intrinsics, cam_to_world, grid, image_size)], dim=-1)
        ray_tokens = self.ray_embed(rays.to(latents.dtype)).flatten(0, 1)  # (B K) N D
        num_patches = ray_tokens.shape[1]
        tokens = torch.cat([latents.repeat_interleave(views, dim=0), ray_tokens], dim=1)

        positions = torch.cat(
            [patch_positions(grid, latents.device).new_zeros(num_latents, 2), patch_positions(grid, latents.device)]
        )
        has_position = torch.arange(len(positions), device=latents.device) >= num_latents
        cos, sin = self.rope.angles(positions, has_position)
        cameras = None
        if self.camera_encoding == "prope":
            projection = PRoPE.projection(intrinsics.float(), cam_to_world.float(), image_size).flatten(0, 1)
            cameras = torch.eye(4, device=latents.device).repeat(batch * views, num_latents + num_patches, 1, 1)
            cameras[:, num_latents:] = projection[:, None]
        geometry = TokenGeometry(cos, sin, self.rope.dims, cameras, self.camera_dims)
        out = self.transformer(tokens, geometry)[:, num_latents:]
        return out.unflatten(0, (batch, views))
