"""Per-view backbones and the latent scene encoder (context views -> latent tokens [B, L, D]).

Not built yet: delivered by issue #3 (PSFM pretraining). Nothing here is importable API so far.
"""
