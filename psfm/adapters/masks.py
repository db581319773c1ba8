"""Padding masks of the adapters: ``True`` marks a real token, ``False`` padding (as Hugging Face's attention_mask)."""

from __future__ import annotations

import torch


def padding_mask(mask: torch.Tensor | None, tokens: torch.Tensor, name: str) -> torch.Tensor:
    """``mask`` [B, N] checked against ``tokens`` [B, N, *]; ``None`` means every token is real.

    Raises:
        ValueError: a mask of another shape or not boolean (a 0/1 float mask would silently mean all-True).
    """
    if tokens.ndim != 3:
        raise ValueError(f"expected tokens [B, N, channels] beside {name}, got shape {tuple(tokens.shape)}")
    if mask is None:
        return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if mask.shape != tokens.shape[:2]:
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(tokens.shape[:2])} (batch, tokens)")
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be bool (True = real token), got {mask.dtype}")
    return mask.to(tokens.device)
