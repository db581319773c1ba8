"""A pre-norm transformer with q/k-norm whose attention is told token geometry (RoPE, PRoPE)."""

from __future__ import annotations

import torch
from torch import nn

from psfm.layers.attention import attention
from psfm.layers.positional import TokenGeometry


class Attention(nn.Module):
    """Multi-head self-attention with per-head q/k LayerNorm (keeps logits bounded at high lr, as in ViT-22B)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, backend: str = "auto"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim, self.backend = num_heads, dim // num_heads, backend
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, geometry: TokenGeometry | None = None) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)  # 3 B h N d
        q, k = self.q_norm(q), self.k_norm(k)
        if geometry is not None:
            q, k, v = geometry.queries(q), geometry.keys(k), geometry.values(v)
        out = attention(q, k, v, self.backend)
        if geometry is not None:
            out = geometry.outputs(out)
        return self.proj(out.transpose(1, 2).flatten(2))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = True, backend: str = "auto"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qk_norm, backend)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, geometry: TokenGeometry | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), geometry)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """``depth`` blocks and a final LayerNorm; ``blocks`` is the unit FSDP2 shards and checkpointing wraps."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        backend: str = "auto",
    ):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qk_norm, backend) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, geometry: TokenGeometry | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, geometry)
        return self.norm(x)
