"""``LatentProjector``: the frozen encoder's latents into a language model's embedding space."""

from __future__ import annotations

import torch
from torch import nn


class LatentProjector(nn.Module):
    """Linear -> GELU -> Linear, latents [..., D] -> [..., E] (LLaVA's two-layer projector, Spa3-VLM's too)."""

    def __init__(self, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.layers = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.shape[-1] != self.latent_dim:
            raise ValueError(
                f"latents have dim {latents.shape[-1]} but the adapter was built for {self.latent_dim}: "
                "build it with latent_dim = the encoder's dim (psfm.load(...).dim)"
            )
        weight = self.layers[0].weight
        return self.layers(latents.to(weight.device, weight.dtype))
