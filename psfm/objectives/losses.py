"""Feature regression losses (Spa3R: smooth-L1 + (1 − cosine) per teacher) and the depth-probe loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize_targets(targets: torch.Tensor, mode: str) -> torch.Tensor:
    """``layernorm`` standardizes each patch's feature vector (teachers differ in scale by 100×); ``none`` keeps it."""
    if mode == "none":
        return targets
    if mode == "layernorm":
        return F.layer_norm(targets, targets.shape[-1:])
    raise ValueError(f"target_norm must be 'none' or 'layernorm', got {mode!r}")


def feature_loss(
    prediction: torch.Tensor, target: torch.Tensor, l1_weight: float = 1.0, cosine_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """prediction, target: [..., Dt] -> scalar loss and its parts (``l1``, ``cosine``) for logging."""
    l1 = F.smooth_l1_loss(prediction.float(), target.float())
    cosine = (1 - F.cosine_similarity(prediction.float(), target.float(), dim=-1)).mean()
    return l1_weight * l1 + cosine_weight * cosine, {"l1": l1.detach(), "cosine": cosine.detach()}


def masked_mean_pool(depth: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """depth [M, 1, H, W] (0 = unknown) -> mean known depth per cell [M, 1, *size] and each cell's known share."""
    known = (depth > 0).to(depth.dtype)
    share = F.adaptive_avg_pool2d(known, size)
    mean = F.adaptive_avg_pool2d(depth * known, size) / share.clamp_min(1e-6)
    return mean, share


def patch_depth(depth: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """depth [M, 1, H, W] metres (0 = unknown) -> mean valid depth per patch [M, N] and validity [M, N]."""
    mean, share = masked_mean_pool(depth, grid)
    return mean.flatten(1), (share > 0.5).flatten(1)


def depth_probe_loss(
    log_depth: torch.Tensor, depth: torch.Tensor, grid: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """log_depth [M, N], depth [M, 1, H, W] -> (L1 in log space, AbsRel), over patches with known depth."""
    target, valid = patch_depth(depth, grid)
    if not valid.any():
        zero = log_depth.sum() * 0
        return zero, zero.detach()
    loss = (log_depth[valid] - target[valid].log()).abs().mean()
    abs_rel = ((log_depth[valid].detach().exp() - target[valid]).abs() / target[valid]).mean()
    return loss, abs_rel


def median_aligned(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """predicted, truth [..., N] (truth NaN where unknown) -> predicted scaled per row by median(truth / predicted).

    A row with no valid entry is left as it is (``depth_scores`` scores it NaN anyway).
    """
    ratio = (truth / predicted.clamp_min(1e-6)).nanmedian(dim=-1, keepdim=True).values
    return predicted * torch.nan_to_num(ratio, nan=1.0)
