"""``SpatialEncoder``: per-view backbone + latent encoder, the network PSFM pretrains and users keep."""

from __future__ import annotations

import torch
from torch import nn

from psfm.encoders.backbones import Backbone, PatchTokens
from psfm.encoders.latent import EncoderOutput, LatentEncoder


class SpatialEncoder(nn.Module):
    """Unposed context views -> latent scene tokens.

    Only images go in: no poses, no view indices. ``encode_views`` exposes the per-view patch
    tokens so an objective can run the backbone once and reuse the tokens.
    """

    def __init__(self, backbone: Backbone, latent: LatentEncoder):
        super().__init__()
        self.backbone = backbone
        self.latent = latent

    @property
    def num_tokens(self) -> int:
        return self.latent.num_latents

    @property
    def dim(self) -> int:
        return self.latent.dim

    def encode_views(self, images: torch.Tensor) -> PatchTokens:
        """images: [B, V, 3, H, W] in [0, 1] -> tokens [B, V, N, Db] and the patch grid."""
        if getattr(self.backbone, "joint_views", False):  # a scene's views together (VGGT), see ModuleBackbone
            return self.backbone.forward_views(images)
        batch, views = images.shape[:2]
        out = self.backbone(images.flatten(0, 1))
        return PatchTokens(out.tokens.unflatten(0, (batch, views)), out.grid)

    def encode_tokens(self, context: PatchTokens, context_rays: torch.Tensor | None = None) -> EncoderOutput:
        """``context_rays`` [B, C, N, 6] only for the ``posed_context`` ablation (``LatentEncoder``)."""
        return self.latent(context.tokens, context.grid, context_rays)

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        """images: [B, C, 3, H, W] context views in [0, 1], in any order -> latents [B, L, D]."""
        return self.encode_tokens(self.encode_views(images))
