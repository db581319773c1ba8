"""Adapters that inject the frozen encoder's latents into a vision-language model (torch only).

``SpatialAdapter`` (the Spa3-VLM design, the default) adds a gated, zero-initialised cross-attention
residual onto the VLM's visual tokens; ``PrependAdapter`` (the ablation) turns the latents into extra
input tokens. Both take latents [B, L, D] from ``psfm.load`` with a padding mask, any batch size.
``AdaptedVLM`` attaches either to a Hugging Face VLM (``VLM_LAYOUTS``) or to ``MiniVLM``, the offline
demo model, through hooks at the visual-token positions.
"""

from psfm.adapters.mini_vlm import MiniVLM
from psfm.adapters.prepend_adapter import PrependAdapter, PrependedTokens
from psfm.adapters.projector import LatentProjector
from psfm.adapters.spatial_adapter import LatentCrossAttention, SpatialAdapter
from psfm.adapters.vlm import VLM_LAYOUTS, AdaptedVLM, VLMLayout, register_vlm_layout

__all__ = [
    "VLM_LAYOUTS",
    "AdaptedVLM",
    "LatentCrossAttention",
    "LatentProjector",
    "MiniVLM",
    "PrependAdapter",
    "PrependedTokens",
    "SpatialAdapter",
    "VLMLayout",
    "register_vlm_layout",
]
