"""Prediction heads: decoder features -> a teacher's feature space, and the built-in depth probe."""

from __future__ import annotations

import torch
from torch import nn


class FeatureHead(nn.Module):
    """LayerNorm -> Linear -> GELU -> Linear: [..., D] -> [..., Dt]."""

    def __init__(self, dim: int, out_dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or 2 * dim
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DepthProbe(nn.Module):
    """Per-patch log-depth from *detached* decoder features: measures what the field knows, shapes nothing."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [..., D] -> log depth (log metres) [...]."""
        return self.net(features.detach()).squeeze(-1)
