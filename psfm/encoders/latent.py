"""The latent scene encoder: context views' patch tokens -> a compact, view-order-free latent set.

Learnable latent queries and register tokens attend jointly with every context patch token
(Spa3R §3): [registers; queries; Linear(context tokens)] -> transformer -> the query outputs are
the latents. Patch tokens carry 2D RoPE of their (row, column) and nothing about which view they
came from, so permuting the context views permutes the input set and leaves the latents unchanged.

One view is special: the *reference* view, context view 0. Target cameras are expressed in its
frame (``MultiViewBatch`` normalizes poses to view 0), so the latents must know which view that
is, or the decoder is asked where a camera sits in a frame it cannot identify and can at best
average over the candidates. A learned ``reference_embed`` is added to view 0's tokens (Spa3R gets
the same from VGGT, which gives the first frame its own camera and register tokens). The latents
stay invariant to the order of the *other* context views.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from psfm.layers import RoPE2D, TokenGeometry, Transformer, patch_positions


@dataclass
class EncoderOutput:
    """latents: [B, L, D] the scene representation; registers: [B, R, D] scratch tokens (not exported)."""

    latents: torch.Tensor
    registers: torch.Tensor


class LatentEncoder(nn.Module):
    """Args:
    in_dim: channels of the backbone's patch tokens (Db).
    dim, depth, num_heads: transformer width (D), layers, heads.
    num_latents: L, the size of the scene representation.
    num_registers: extra learnable tokens that absorb attention sinks (Darcet et al. 2023).
    rope_base: 2D RoPE frequency base; backend: attention backend (``auto``/``sdpa``/``xformers``).
    reference_view: mark context view 0 as the frame of the target poses (see module docstring);
        False reproduces the fully order-free encoder of exports made before it existed.
    posed_context: an *ablation*, not PSFM: add each context patch's Plücker ray (reference frame,
        normalized poses) to its token, so the encoder need not infer where the context cameras
        stand. It separates "cannot infer the cameras" from "cannot fuse the views" when an
        unposed encoder learns nothing; such an encoder needs ``context_rays`` and cannot be probed
        or exported for images-only use.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 768,
        depth: int = 6,
        num_heads: int = 12,
        num_latents: int = 256,
        num_registers: int = 4,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        rope_base: float = 100.0,
        backend: str = "auto",
        reference_view: bool = True,
        posed_context: bool = False,
    ):
        super().__init__()
        self.dim, self.num_latents, self.num_registers = dim, num_latents, num_registers
        self.input_proj = nn.Linear(in_dim, dim)
        self.queries = nn.Parameter(torch.empty(num_latents, dim))
        self.registers = nn.Parameter(torch.empty(num_registers, dim))
        nn.init.trunc_normal_(self.queries, std=0.02)
        nn.init.trunc_normal_(self.registers, std=0.02)
        self.reference_embed = nn.Parameter(torch.empty(dim)) if reference_view else None
        if self.reference_embed is not None:  # the scale of a projected token, so the mark shows from step 0
            nn.init.normal_(self.reference_embed, std=0.5)
        self.ray_embed = nn.Linear(6, dim) if posed_context else None
        head_dim = dim // num_heads
        self.rope = RoPE2D(head_dim - head_dim % 4, rope_base)
        self.transformer = Transformer(dim, depth, num_heads, mlp_ratio, qk_norm, backend)

    def forward(
        self, context_tokens: torch.Tensor, grid: tuple[int, int], context_rays: torch.Tensor | None = None
    ) -> EncoderOutput:
        """context_tokens: [B, C, N, Db] patch tokens of the context views, N = h * w of ``grid``.

        Context view 0 is the reference view (the frame target poses are expressed in).
        context_rays: [B, C, N, 6] Plücker rays of the context patches, only for ``posed_context``.
        """
        if (self.ray_embed is None) != (context_rays is None):
            need = "needs context_rays (posed_context ablation)" if self.ray_embed is not None else "takes no rays"
            raise ValueError(f"this latent encoder {need}")
        batch, num_context, num_patches, _ = context_tokens.shape
        special = self.num_registers + self.num_latents
        positions = patch_positions(grid, context_tokens.device).repeat(num_context, 1)  # (C N) 2
        positions = torch.cat([positions.new_zeros(special, 2), positions])
        has_position = torch.arange(len(positions), device=positions.device) >= special
        cos, sin = self.rope.angles(positions, has_position)
        geometry = TokenGeometry(rope_cos=cos, rope_sin=sin, rope_dims=self.rope.dims)

        patches = self.input_proj(context_tokens)  # B C N D
        if self.ray_embed is not None:
            patches = patches + self.ray_embed(context_rays.to(patches.dtype))
        if self.reference_embed is not None:
            marked = patches[:, :1] + self.reference_embed.to(patches.dtype)
            patches = torch.cat([marked, patches[:, 1:]], dim=1)
        patches = patches.flatten(1, 2)  # B (C N) D
        tokens = torch.cat(
            [self.registers.expand(batch, -1, -1), self.queries.expand(batch, -1, -1), patches.to(self.queries.dtype)],
            dim=1,
        )
        tokens = self.transformer(tokens, geometry)
        return EncoderOutput(latents=tokens[:, self.num_registers : special], registers=tokens[:, : self.num_registers])
