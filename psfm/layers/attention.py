"""Scaled dot-product attention: xformers' memory-efficient kernel on CUDA when installed, else PyTorch SDPA.

Both compute softmax(q kᵀ / √d) v without masks, so switching backend changes speed, not numerics
(beyond kernel rounding; ``benchmarks/pretrain_mfu.py`` measures the difference on a GPU).
"""

from __future__ import annotations

import functools
import importlib.util

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "sdpa", "xformers")


@functools.cache
def _xformers_importable() -> bool:
    return importlib.util.find_spec("xformers") is not None


def attention_backend(requested: str, device: torch.device) -> str:
    """The backend ``attention`` will use for tensors on ``device``.

    ``auto`` picks xformers on CUDA when it is installed (its kernels are CUDA-only) and SDPA
    otherwise; asking for ``xformers`` where it cannot run is an error, not a silent fallback.
    """
    if requested not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS}, got {requested!r}")
    if requested == "sdpa":
        return "sdpa"
    usable = device.type == "cuda" and _xformers_importable()
    if requested == "xformers" and not usable:
        raise RuntimeError(
            "attention backend 'xformers' needs CUDA and the xformers package "
            f"(device {device}, xformers {'installed' if _xformers_importable() else 'not installed'})"
        )
    return "xformers" if usable else "sdpa"


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """q, k, v: [B, heads, N, d] -> [B, heads, N, d]."""
    if attention_backend(backend, q.device) == "xformers":
        import xformers.ops as xops

        # xformers wants [B, N, heads, d]
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v)
