"""Where tokens are, told to attention: 2D RoPE for patch positions, PRoPE for cameras.

``TokenGeometry`` describes one token sequence and transforms q, k, v and the attention output.
Head channels are split: the first ``camera_dims`` carry PRoPE (camera-relative projective
attention, arXiv 2507.10496), the last ``rope_dims`` carry 2D RoPE of the patch (row, column).
Tokens without a position (latent queries, registers) get the identity in both, so they are
"anywhere": attention between them depends on content only.

Why PRoPE transforms q by Pᵢᵀ, k and v by Pⱼ⁻¹ and the output by Pᵢ: then
qᵢ'·kⱼ' = qᵢᵀ Pᵢ Pⱼ⁻¹ kⱼ depends only on the *relative* projective transform between the two
cameras, so the decoder is invariant to the choice of world frame up to what the latents encode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def patch_positions(grid: tuple[int, int], device: torch.device | None = None) -> torch.Tensor:
    """[h * w, 2] float (row, column) of each patch in row-major order."""
    rows, cols = torch.meshgrid(
        torch.arange(grid[0], device=device), torch.arange(grid[1], device=device), indexing="ij"
    )
    return torch.stack([rows.flatten(), cols.flatten()], dim=-1).float()


class RoPE2D:
    """Rotary embedding over two axes: half the rotated channels follow the row, half the column.

    Args:
        dims: channels per head to rotate (multiple of 4).
        base: frequency base; patch grids are small (≤ 64 per side), so 100 spreads the
            wavelengths over the useful range better than the 10000 of text models.
    """

    def __init__(self, dims: int, base: float = 100.0):
        if dims % 4:
            raise ValueError(f"RoPE2D needs a multiple of 4 channels, got {dims}")
        self.dims = dims
        self.inv_freq = base ** (-torch.arange(dims // 4, dtype=torch.float64) / (dims // 4))

    def angles(self, positions: torch.Tensor, has_position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions: [N, 2], has_position: [N] bool -> cos, sin: [N, dims / 2] (angle 0 where no position)."""
        inv_freq = self.inv_freq.to(positions.device)
        angles = torch.cat([positions[:, :1].double() * inv_freq, positions[:, 1:].double() * inv_freq], dim=-1)
        angles = angles * has_position[:, None]
        return angles.cos().float(), angles.sin().float()


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1) of x [..., N, 2K] by angles with cos/sin [N, K]."""
    pairs = x.unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class PRoPE:
    """Per-token projective matrices Pᵢ = [[K̃ 0], [0 1]] · world_to_camᵢ (K̃: intrinsics in image units).

    ``projection(...)`` builds Pᵢ; ``TokenGeometry`` applies them blockwise (4 channels at a time).
    """

    @staticmethod
    def projection(intrinsics: torch.Tensor, cam_to_world: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """intrinsics [..., 3, 3] pixels, cam_to_world [..., 4, 4] -> P [..., 4, 4].

        Intrinsics are divided by the image size so P does not depend on the resolution.
        """
        height, width = image_size
        scale = intrinsics.new_tensor([1.0 / width, 1.0 / height, 1.0]).diag()
        lifted = torch.zeros(*intrinsics.shape[:-2], 4, 4, dtype=intrinsics.dtype, device=intrinsics.device)
        lifted[..., :3, :3] = scale @ intrinsics
        lifted[..., 3, 3] = 1.0
        return lifted @ torch.linalg.inv(cam_to_world)


def _apply_blocks(matrices: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """matrices [B, N, 4, 4], x [B, heads, N, 4K] -> each 4-channel block multiplied by its token's matrix."""
    blocks = x.unflatten(-1, (-1, 4))  # B heads N K 4
    return torch.einsum("bnij,bhnkj->bhnki", matrices.to(x.dtype), blocks).flatten(-2)


@dataclass
class TokenGeometry:
    """Positions and cameras of one token sequence, shared by every layer of a transformer.

    Attributes:
        rope_cos, rope_sin: [N, rope_dims / 2], or None for no RoPE.
        rope_dims: trailing channels per head rotated by RoPE.
        cameras: [B, N, 4, 4] PRoPE matrix per token (identity for camera-less tokens), or None.
        camera_dims: leading channels per head transformed by PRoPE (multiple of 4).
    """

    rope_cos: torch.Tensor | None = None
    rope_sin: torch.Tensor | None = None
    rope_dims: int = 0
    cameras: torch.Tensor | None = None
    camera_dims: int = 0

    def __post_init__(self) -> None:
        if self.cameras is not None:
            cameras = self.cameras.float()
            self._query = cameras.transpose(-1, -2)
            self._key = torch.linalg.inv(cameras)
            self._output = cameras

    def _transform(self, x: torch.Tensor, matrices: torch.Tensor | None, rope: bool) -> torch.Tensor:
        head_dim = x.shape[-1]
        parts = []
        if matrices is not None:
            parts.append(_apply_blocks(matrices, x[..., : self.camera_dims]))
        start = self.camera_dims if self.cameras is not None else 0
        stop = head_dim - self.rope_dims if self.rope_cos is not None else head_dim
        if stop > start:
            parts.append(x[..., start:stop])
        if self.rope_cos is not None:
            tail = x[..., head_dim - self.rope_dims :]
            parts.append(rotate_pairs(tail, self.rope_cos, self.rope_sin) if rope else tail)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def queries(self, q: torch.Tensor) -> torch.Tensor:
        return self._transform(q, self._query if self.cameras is not None else None, rope=True)

    def keys(self, k: torch.Tensor) -> torch.Tensor:
        return self._transform(k, self._key if self.cameras is not None else None, rope=True)

    def values(self, v: torch.Tensor) -> torch.Tensor:
        return (
            self._transform(v, self._key if self.cameras is not None else None, rope=False)
            if self.cameras is not None
            else v
        )

    def outputs(self, o: torch.Tensor) -> torch.Tensor:
        return self._transform(o, self._output, rope=False) if self.cameras is not None else o
