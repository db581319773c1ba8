"""Depth probes: per patch of a seen view from its backbone tokens, and of an unseen view from the latents.

* ``view_depth``: closed-form ridge from each context view's patch tokens to the patch's log depth
  (the linear depth probe of DINOv2, at patch resolution).
* ``target_depth``: ``RayDepthProbe`` on the scene tokens and the rays of a *target* view the
  encoder never saw, posed in the reference frame. The constant source's row is the rays-only
  floor: what a camera's pose alone says about depth in these rooms (the floor is below, ...).
  ``target_depth/reference_alone`` scores the same fitted probe on the tokens of the reference
  view alone: its rise over the full score is what the other context views add, i.e. whether
  the representation fuses views or describes the view that defines its frame.

Depth is predicted in log space; scores are AbsRel and δ < 1.25 in metres over valid patches, and
AbsRel after aligning each view's scale to the truth by the median ratio (the monocular-depth
convention, MiDaS/Eigen): metric AbsRel is dominated by one number per scene, its size, which images
show only weakly; the aligned one asks whether the probe knows the *shape* of what the view sees.
"""

from __future__ import annotations

import torch

from psfm.objectives.losses import median_aligned
from psfm.objectives.rays import camera_rays, plucker_rays
from psfm.probes.models import RayDepthProbe, Ridge, fit_probe
from psfm.probes.results import ProbeScore, bootstrap_ci, fit_record
from psfm.probes.scenes import ProbeScenes
from psfm.probes.sources import ProbeFeatures
from psfm.probes.targets import patch_depth_median

MAX_RIDGE_ROWS = 60_000


def depth_scores(predicted: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """predicted, truth [S, ...] metres (truth NaN where unknown) -> per-scene AbsRel [S] and δ<1.25 [S].

    A scene with no valid patch scores NaN (left out of means and intervals), neither perfect nor worst.
    """
    valid = ~torch.isnan(truth)
    truth_ = torch.where(valid, truth, 1.0)
    rel = ((predicted - truth_).abs() / truth_ * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)
    ratio = torch.maximum(predicted / truth_, truth_ / predicted.clamp_min(1e-6))
    delta = ((ratio < 1.25) & valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)
    empty = ~valid.flatten(1).any(1)
    return rel.masked_fill(empty, torch.nan), delta.float().masked_fill(empty, torch.nan)


ALIGNED = "AbsRel, scale-aligned"
PROBE = "target_depth/ray_decoder"


def view_depth(
    train: ProbeFeatures, val: ProbeFeatures, train_scenes: ProbeScenes, val_scenes: ProbeScenes
) -> list[ProbeScore]:
    context = train_scenes.num_context
    truth_train = patch_depth_median(train_scenes.depth[:, :context], train.grid).log()  # S C N
    truth_val = patch_depth_median(val_scenes.depth[:, :context], val.grid)
    x, y = train.view_tokens.flatten(0, 2), truth_train.flatten()[:, None]
    keep = (~torch.isnan(y[:, 0])).nonzero().squeeze(1)
    if len(keep) > MAX_RIDGE_ROWS:
        keep = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))[:MAX_RIDGE_ROWS]]
    ridge = Ridge().fit(x[keep], y[keep])
    predicted = ridge.predict(val.view_tokens.flatten(0, 2)).view(truth_val.shape).exp()
    rel, delta = depth_scores(predicted, truth_val)
    aligned = depth_scores(median_aligned(predicted, truth_val), truth_val)[0]
    return [
        ProbeScore(
            "view_depth/linear", "AbsRel", [rel.nanmean().item()], ci=bootstrap_ci(rel), extra={"predicted": predicted}
        ),
        ProbeScore(
            "view_depth/linear", "δ<1.25", [delta.nanmean().item()], lower_is_better=False, ci=bootstrap_ci(delta)
        ),
        ProbeScore("view_depth/linear", ALIGNED, [aligned.nanmean().item()], ci=bootstrap_ci(aligned)),
    ]


TARGET_DEPTH_UNITS = ("normalized", "metric")


def target_rays(scenes: ProbeScenes, grid: tuple[int, int]) -> torch.Tensor:
    """[S, T, N, 9] camera-frame direction + reference-frame Plücker ray of every target view's patches."""
    views = slice(scenes.num_context, None)
    intrinsics, poses = scenes.intrinsics[:, views], scenes.cam_to_world[:, views]
    directions = camera_rays(intrinsics, grid, scenes.image_size)
    return torch.cat([directions, plucker_rays(intrinsics, poses, grid, scenes.image_size)], dim=-1)


def _ray_items(scenes: ProbeScenes, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scene index [I], rays [I, N, 9], metric depth [I, N]) for every (scene, target view) pair."""
    rays = target_rays(scenes, grid)
    depth = patch_depth_median(scenes.depth[:, scenes.num_context :], grid)  # S T N
    scene_index = torch.arange(len(scenes))[:, None].expand(-1, rays.shape[1])
    return scene_index.flatten(), rays.flatten(0, 1), depth.flatten(0, 1)


def target_depth(
    train: ProbeFeatures,
    val: ProbeFeatures,
    train_scenes: ProbeScenes,
    val_scenes: ProbeScenes,
    seeds: list[int],
    steps: int = 800,
    units: str = "normalized",
) -> list[ProbeScore]:
    """``units``: what the probe regresses. ``normalized`` (depth / the scene's pose scale, the units of
    the rays) or ``metric`` (metres, what PSFM's own depth probe and the ``depth`` teacher regress: the
    latents come from images alone, which show metric sizes but not the cameras' spread). Scored in metres."""
    if units not in TARGET_DEPTH_UNITS:
        raise ValueError(f"target_depth units must be one of {TARGET_DEPTH_UNITS}, got {units!r}")
    tokens = train.scene_tokens
    index, rays, depth = _ray_items(train_scenes, train.grid)
    if units == "normalized":
        depth = depth / train_scenes.pose_scale[index, None]  # the frame of the rays
    log_depth = depth.log()

    def loss_fn(model: RayDepthProbe, scene: torch.Tensor, ray: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = ~torch.isnan(target)
        error = (model(tokens[scene], ray) - torch.nan_to_num(target)).abs()
        return (error * valid).sum() / valid.sum().clamp_min(1)

    val_index, val_rays, val_depth = _ray_items(val_scenes, val.grid)
    scale = val_scenes.pose_scale[val_index, None]
    truth = val_depth.unflatten(0, (len(val_scenes), -1))  # S T N

    @torch.no_grad()
    def predict(model: RayDepthProbe, val_tokens: torch.Tensor) -> torch.Tensor:
        """[S, T, N] metric depth of every held-out target view, read from ``val_tokens``."""
        predicted = torch.cat(
            [model(val_tokens[i], r).exp() for i, r in zip(val_index.split(256), val_rays.split(256), strict=True)]
        )
        if units == "normalized":
            predicted = predicted * scale
        return predicted.unflatten(0, (len(val_scenes), -1))

    rels, deltas, aligned, alone, curves, first = [], [], [], [], [], None
    for seed in seeds:
        torch.manual_seed(seed)
        model = RayDepthProbe(tokens.shape[-1], mark_first=train.first_is_reference)
        curves.append(fit_probe(model, (index, rays, log_depth), loss_fn, steps=steps, seed=seed).holdout_curve)
        predicted = predict(model, val.scene_tokens)
        rel, delta = depth_scores(predicted, truth)
        rels.append(rel.nanmean().item())
        deltas.append(delta.nanmean().item())
        aligned.append(depth_scores(median_aligned(predicted, truth), truth)[0].nanmean().item())
        if val.reference_tokens is not None:  # the same probe, shown what the reference view alone gives
            alone.append(depth_scores(predict(model, val.reference_tokens), truth)[0].nanmean().item())
        first = predicted if first is None else first
    scores = [
        ProbeScore(PROBE, "AbsRel", rels, extra={"predicted": first, **fit_record(PROBE, curves)}),
        ProbeScore(PROBE, "δ<1.25", deltas, lower_is_better=False),
        ProbeScore(PROBE, ALIGNED, aligned),
    ]
    if alone:
        scores.append(ProbeScore("target_depth/reference_alone", "AbsRel", alone))
    return scores
