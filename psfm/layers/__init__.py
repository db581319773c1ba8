"""Transformer building blocks shared by the latent encoder and the field decoder (torch only)."""

from psfm.layers.attention import attention, attention_backend
from psfm.layers.positional import PRoPE, RoPE2D, TokenGeometry, patch_positions
from psfm.layers.transformer import Block, Transformer

__all__ = [
    "Block",
    "PRoPE",
    "RoPE2D",
    "TokenGeometry",
    "Transformer",
    "attention",
    "attention_backend",
    "patch_positions",
]
