"""Relative camera pose between two context views, read from their patch tokens.

An attentive probe sees both views' tokens (with an embedding per view and patch slot) and predicts
the second camera's rotation (6D: the first two columns, Gram-Schmidt at read-out, Zhou et al.
2019) and translation direction in the first camera's frame. Every ordered pair of context views
is one item. Scores: mean rotation error and translation-direction error in degrees.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F  # noqa: N812

from psfm.probes.models import AttentiveProbe, fit_probe
from psfm.probes.results import ProbeScore, fit_record
from psfm.probes.scenes import ProbeScenes
from psfm.probes.sources import ProbeFeatures
from psfm.probes.targets import relative_pose


def rotation_from_6d(values: torch.Tensor) -> torch.Tensor:
    """[..., 6] (two columns) -> [..., 3, 3] proper rotation by Gram-Schmidt."""
    first = F.normalize(values[..., :3], dim=-1)
    second = F.normalize(values[..., 3:] - (first * values[..., 3:]).sum(-1, keepdim=True) * first, dim=-1)
    return torch.stack([first, second, torch.cross(first, second, dim=-1)], dim=-1)


def angle_between_rotations(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle in degrees between rotations [..., 3, 3]."""
    trace = (a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.rad2deg(torch.arccos(((trace - 1) / 2).clamp(-1, 1)))


def angle_between_directions(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cos = (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))


def pose_items(scenes: ProbeScenes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scene index [I], view pair [I, 2], targets [I, 9]) for every ordered pair of context views."""
    indices, pairs, targets = [], [], []
    for first, second in itertools.permutations(range(scenes.num_context), 2):
        rotation, direction = relative_pose(scenes.cam_to_world, first, second)
        indices.append(torch.arange(len(scenes)))
        pairs.append(torch.tensor([first, second]).expand(len(scenes), 2))
        targets.append(torch.cat([rotation[..., 0], rotation[..., 1], direction], dim=-1))
    return torch.cat(indices), torch.cat(pairs), torch.cat(targets)


def relative_pose_probe(
    train: ProbeFeatures,
    val: ProbeFeatures,
    train_scenes: ProbeScenes,
    val_scenes: ProbeScenes,
    seeds: list[int],
    steps: int = 800,
) -> list[ProbeScore]:
    def pair_tokens(features: ProbeFeatures, scene: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        views = features.view_tokens[scene[:, None], pair]  # I 2 N Dv
        return views.flatten(1, 2)

    def loss_fn(model: AttentiveProbe, scene: torch.Tensor, pair: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (model(pair_tokens(train, scene, pair)) - target).square().mean()

    items = pose_items(train_scenes)
    val_scene, val_pair, val_target = pose_items(val_scenes)
    num_tokens = 2 * train.view_tokens.shape[2]
    rotation_errors, direction_errors, curves = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        model = AttentiveProbe(train.view_tokens.shape[-1], 9, num_token_ids=num_tokens)
        curves.append(fit_probe(model, items, loss_fn, steps=steps, seed=seed).holdout_curve)
        with torch.no_grad():
            predicted = torch.cat(
                [model(pair_tokens(val, s, p)) for s, p in zip(val_scene.split(256), val_pair.split(256), strict=True)]
            )
        truth_rotation = torch.stack([val_target[:, :3], val_target[:, 3:6]], -1)
        truth_rotation = torch.cat(
            [truth_rotation, torch.cross(val_target[:, :3], val_target[:, 3:6], -1)[..., None]], -1
        )
        rotation_errors.append(
            angle_between_rotations(rotation_from_6d(predicted[:, :6]), truth_rotation).mean().item()
        )
        direction_errors.append(angle_between_directions(predicted[:, 6:], val_target[:, 6:]).mean().item())
    return [
        ProbeScore(
            "relative_pose/attentive",
            "rotation error (°)",
            rotation_errors,
            extra=fit_record("relative_pose/attentive", curves),
        ),
        ProbeScore("relative_pose/attentive", "translation direction error (°)", direction_errors),
    ]
