"""``build_encoder``: backbone + latent encoder from their configs, the one builder pretraining and ``psfm.load`` share.

Torch and timm only (no objective, teacher or trainer), so a VLM process can rebuild an export.
"""

from __future__ import annotations

from dataclasses import asdict

from psfm.encoders.backbones import BACKBONES
from psfm.encoders.config import BackboneConfig, EncoderConfig
from psfm.encoders.latent import LatentEncoder
from psfm.encoders.spatial import SpatialEncoder


def build_encoder(backbone: BackboneConfig, encoder: EncoderConfig, attention: str = "auto") -> SpatialEncoder:
    """The network PSFM pretrains and ``psfm.load`` rebuilds: backbone + latent encoder."""
    if backbone.require_checkpoint and not backbone.checkpoint:
        raise ValueError(
            "model.backbone.checkpoint is required by this experiment (a frozen backbone at random init "
            "teaches nothing): pass model.backbone.checkpoint=/path/to/weights"
        )
    options = {"img_size": backbone.img_size, "checkpoint": backbone.checkpoint, "frozen": backbone.frozen}
    if backbone.model_name is not None:
        options["model_name"] = backbone.model_name
    if backbone.name == "module":  # the user's factory takes its own kwargs (in overrides)
        options = {"frozen": backbone.frozen}
    net = BACKBONES.build(backbone.name, **options, **backbone.overrides)
    kwargs = {key: value for key, value in asdict(encoder).items() if key != "trainable"}
    latent = LatentEncoder(in_dim=net.dim, backend=attention, **kwargs)
    spatial = SpatialEncoder(net, latent)
    if not encoder.trainable:
        spatial.requires_grad_(False)
    return spatial
