"""What an encoder is built from: the backbone's and the latent encoder's settings (plain dataclasses).

They live beside the encoder, not under ``training/``, so ``psfm.load`` rebuilds an export in a
process that has torch, timm and safetensors and nothing of the trainer (``psfm pretrain`` nests
them in its Hydra schema, ``psfm.training.config.ModelConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BackboneConfig:
    """A registered backbone (``vit_test``, ``vit_tiny``, ``timm``) and its options.

    ``model_name`` is for ``timm``; ``overrides`` are timm architecture kwargs (depth, embed_dim ...).
    ``checkpoint`` loads local weights; ``frozen`` keeps them fixed (Spa3R freezes its backbone).
    """

    name: str = "vit_test"
    model_name: str | None = None
    img_size: int = 128
    checkpoint: str | None = None
    require_checkpoint: bool = False  # experiments whose frozen backbone is useless at random init set this
    frozen: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class EncoderConfig:
    """``LatentEncoder`` shape; ``trainable: false`` freezes backbone and encoder at random init (a baseline)."""

    dim: int = 64
    depth: int = 2
    num_heads: int = 4
    num_latents: int = 16
    num_registers: int = 2
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    rope_base: float = 100.0
    reference_view: bool = True  # mark context view 0, the frame of the target poses (psfm.encoders.latent)
    posed_context: bool = False  # ablation: context rays added to the tokens (psfm.encoders.latent; not exportable)
    trainable: bool = True
