"""Per-view backbones and the latent scene encoder (context views -> latent tokens [B, L, D]).

``config`` (what an encoder is built from) and ``build`` (``build_encoder``) need torch and timm
only: ``psfm.load`` rebuilds exports from them in processes without the trainer's packages.
"""
