"""``PrependAdapter``, the ablation: the latents become extra input tokens of the language model (LLaVA-style).

Where ``SpatialAdapter`` edits the visual tokens in place, this one lengthens the sequence by one
token per real latent; the VLM wrapper places them (and their mask) before the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from psfm.adapters.masks import padding_mask
from psfm.adapters.projector import LatentProjector


@dataclass
class PrependedTokens:
    """tokens: [B, L, E] one per latent, zero at padding; mask: [B, L] bool, True = real (attend to it)."""

    tokens: torch.Tensor
    mask: torch.Tensor


class PrependAdapter(nn.Module):
    """latents [B, L, D] (+ mask [B, L]) -> ``PrependedTokens``; K = L tokens, the projector alone is trained.

    Fewer tokens per scene means an encoder with fewer latents (its ``num_latents``), not pooling here.
    """

    def __init__(self, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.projector = LatentProjector(latent_dim, hidden_dim)

    def forward(self, latents: torch.Tensor, latent_mask: torch.Tensor | None = None) -> PrependedTokens:
        mask = padding_mask(latent_mask, latents, "latent_mask")
        padding = ~mask[..., None]
        tokens = self.projector(latents.masked_fill(padding, 0)).masked_fill(padding, 0)
        return PrependedTokens(tokens, mask)
