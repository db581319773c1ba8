"""What an encoder sees of each view: the photo (PSFM, the default) or the view's depth as an image.

``depth`` encoders are first an *ablation*: when unseen-view depth does not improve past what the
target rays alone give, two things can be missing: seeing the geometry of each context view
(monocular depth from 64 px renders, learnt in a few thousand steps) or fusing several views into
a scene (relating their cameras, placing the surfaces). Feeding the backbone each context view's
true depth as an image removes the first; if the latents then still cannot predict the depth of a
view they never saw, the fault is in the fusion (the encoder, the decoder or the training budget),
not in perception. They also suit captures whose views all carry depth (a depth sensor). An export
records its input (``encoder.json`` ``"input"``); a ``depth`` encoder is called on
``depth_as_image(depth)``.

The depth becomes three channels in [0, 1]: ``v``, the log-depth spread over [0.2 m, 20 m], and
``sin``/``cos`` of ``2π·4·v`` rescaled, so a patch-embedding layer reads depth finely (one grey
level of ``v`` is 1.8 % of depth; the periodic channels resolve a tenth of that). Unknown depth is 0.
"""

from __future__ import annotations

import math

import torch

ENCODER_INPUTS = ("images", "depth")
NEAR_M, FAR_M, CYCLES = 0.2, 20.0, 4


def depth_as_image(depth: torch.Tensor) -> torch.Tensor:
    """depth [..., 1, H, W] metres (0 = unknown) -> [..., 3, H, W] in [0, 1] (see module docstring)."""
    known = depth > 0
    spread = (depth.clamp(NEAR_M, FAR_M).log() - math.log(NEAR_M)) / math.log(FAR_M / NEAR_M)
    phase = 2 * math.pi * CYCLES * spread
    channels = torch.cat([spread, 0.5 + 0.5 * phase.sin(), 0.5 + 0.5 * phase.cos()], dim=-3)
    return torch.where(known, channels, torch.zeros_like(channels))


def check_input(value: str) -> str:
    if value not in ENCODER_INPUTS:
        raise ValueError(f"an encoder's input must be one of {ENCODER_INPUTS}, got {value!r}")
    return value
