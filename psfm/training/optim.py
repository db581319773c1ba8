"""AdamW parameter groups and the warmup + cosine learning-rate schedule (per optimizer step)."""

from __future__ import annotations

import math

import torch
from torch import nn

from psfm.training.config import OptimConfig

# learned token tables: ours (latent encoder) and timm ViTs' (class, register, distillation, mask tokens)
LEARNED_TOKENS = (".queries", ".registers", ".cls_token", ".reg_token", ".dist_token", ".mask_token")


def parameter_groups(named: list[tuple[str, nn.Parameter]], weight_decay: float, decay_all: bool = False) -> list[dict]:
    """No weight decay on biases, norms, and learned tokens (1-D tensors, query/register tables, timm's tokens).

    ``decay_all`` puts every parameter in one decayed group instead: torch's AdamW default, which
    Spa3R's reference code trains with.
    """
    if decay_all:
        return [{"params": [param for _, param in named], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for name, param in named:
        exempt = param.ndim <= 1 or name.endswith(LEARNED_TOKENS) or "pos_embed" in name
        (no_decay if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr at ``step``: linear warmup from 0, then cosine down to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(
    named: list[tuple[str, nn.Parameter]], config: OptimConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(
        parameter_groups(named, config.weight_decay, config.decay_all),
        lr=config.lr,
        betas=tuple(config.betas),
        fused=False,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, config.warmup_steps, config.min_lr_ratio)
    )
    return optimizer, schedule
