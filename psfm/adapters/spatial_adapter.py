"""``SpatialAdapter``: the Spa3-VLM injection, a VLM's visual tokens read the scene latents and take a gated residual.

The visual tokens [B, Q, E] are the queries of one cross-attention over the projected latents
[B, L, E]; its output goes through a LayerNorm and a bottleneck MLP, is scaled by a sigmoid gate
computed from the same features, and is added onto the visual tokens. No token is added, so the
language model's sequence and positions are untouched. The bottleneck's last layer starts at zero:
at step 0 the VLM sees exactly its own visual tokens, and training decides how much scene to mix in.

Unlike the reference code (``shared/REFERENCE.md`` §1): any batch size, any number of visual tokens
and latents per sample (padding masks; a sample may concatenate several scenes' latents along L),
no device assumptions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from psfm.adapters.masks import padding_mask
from psfm.adapters.projector import LatentProjector


class LatentCrossAttention(nn.Module):
    """Multi-head attention of queries [B, Q, E] over keys/values [B, L, E], per-head q/k RMSNorm.

    q/k-norm bounds the attention logits whatever the scale of the VLM's visual tokens.
    """

    def __init__(self, dim: int, num_heads: int, norm_eps: float = 1e-6):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=norm_eps)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=norm_eps)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """key_mask: [B, L] bool, True = attend; every row needs at least one True (else SDPA gives NaN)."""
        q = self.q_norm(self._heads(self.q_proj(queries)))  # B h Q d
        k = self.k_norm(self._heads(self.k_proj(keys_values)))  # B h L d
        v = self._heads(self.v_proj(keys_values))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])  # B h Q d
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # B N E -> B h N d


class SpatialAdapter(nn.Module):
    """Args:
    latent_dim: D, the frozen encoder's latent width (``psfm.load(...).dim``).
    hidden_dim: E, the VLM's hidden size (the width of its visual tokens).
    num_heads: cross-attention heads (Spa3-VLM uses the language model's head count).
    bottleneck_dim: width of the bottleneck MLP; default E / 4, the reference's 2048 -> 512.
    norm_eps: epsilon of the q/k RMSNorms.
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_dim: int,
        num_heads: int,
        bottleneck_dim: int | None = None,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        bottleneck_dim = bottleneck_dim or hidden_dim // 4
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.projector = LatentProjector(latent_dim, hidden_dim)
        self.cross_attention = LatentCrossAttention(hidden_dim, num_heads, norm_eps)
        self.norm = nn.LayerNorm(hidden_dim)
        self.bottleneck = nn.Sequential(
            nn.Linear(hidden_dim, bottleneck_dim), nn.GELU(), nn.Linear(bottleneck_dim, hidden_dim)
        )
        self.gate = nn.Linear(hidden_dim, hidden_dim)  # per channel and token, through a sigmoid
        nn.init.zeros_(self.bottleneck[-1].weight)  # the residual starts at exactly zero
        nn.init.zeros_(self.bottleneck[-1].bias)

    def forward(
        self,
        visual_tokens: torch.Tensor,
        latents: torch.Tensor,
        visual_mask: torch.Tensor | None = None,
        latent_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Visual tokens with the scene mixed in, same shape and dtype; padding comes back unchanged.

        Args:
            visual_tokens: [B, Q, E] the VLM's visual tokens (padded per sample).
            latents: [B, L, D] the frozen encoder's latents (padded per sample; scenes concatenated along L).
            visual_mask: [B, Q] bool, True = real token; None = all real.
            latent_mask: [B, L] bool, True = real latent; None = all real. A sample with no real latent
                keeps its visual tokens unchanged.
        """
        visual_mask = padding_mask(visual_mask, visual_tokens, "visual_mask")
        latent_mask = padding_mask(latent_mask, latents, "latent_mask")
        if visual_tokens.shape[-1] != self.hidden_dim:
            raise ValueError(f"visual tokens have dim {visual_tokens.shape[-1]}, the adapter expects {self.hidden_dim}")
        if latents.shape[0] != visual_tokens.shape[0]:
            raise ValueError(f"latents for {latents.shape[0]} samples, visual tokens for {visual_tokens.shape[0]}")
        has_latents = latent_mask.any(dim=1)  # B
        # padding may hold anything (NaN included): zero it so nothing non-finite reaches the weights' gradients
        queries = visual_tokens.masked_fill(~visual_mask[..., None], 0).to(self.norm.weight.dtype)
        scene = self.projector(latents.masked_fill(~latent_mask[..., None], 0))  # B L E
        # a sample without latents attends to its zeroed padding (softmax over no key is NaN in some kernels);
        # its update is dropped below
        read = self.norm(self.cross_attention(queries, scene, latent_mask | ~has_latents[:, None]))  # B Q E
        update = self.bottleneck(read) * torch.sigmoid(self.gate(read))
        changed = visual_mask & has_latents[:, None]
        return torch.where(changed[..., None], visual_tokens + update.to(visual_tokens.dtype), visual_tokens)
