"""Adapters that inject the frozen encoder's latents into a vision-language model (torch only).

``SpatialAdapter`` (the Spa3-VLM design, the default) adds a gated, zero-initialised cross-attention
residual onto the VLM's visual tokens; ``PrependAdapter`` (the ablation) turns the latents into extra
input tokens. Both take latents [B, L, D] from ``psfm.load`` with a padding mask, any batch size.
"""

from psfm.adapters.prepend_adapter import PrependAdapter, PrependedTokens
from psfm.adapters.projector import LatentProjector
from psfm.adapters.spatial_adapter import LatentCrossAttention, SpatialAdapter

__all__ = ["LatentCrossAttention", "LatentProjector", "PrependAdapter", "PrependedTokens", "SpatialAdapter"]
