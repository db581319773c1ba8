"""Depth probes: the scores by hand, the rays, and probes that read depth held in the features."""

from __future__ import annotations

import pytest
import torch

from psfm.objectives.rays import camera_rays
from psfm.probes.depth import depth_scores, target_depth, target_rays, view_depth
from psfm.probes.sources import ProbeFeatures
from tests.probes.conftest import make_scenes, pose


def score(scores, metric: str) -> float:
    return next(s for s in scores if s.metric == metric).mean


def test_depth_scores_by_hand():
    predicted = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    truth = torch.tensor([[1.0, 2.5, torch.nan, 2.0], [2.0, 2.0, 2.0, 2.0]])
    rel, delta = depth_scores(predicted, truth)
    assert rel.tolist() == pytest.approx([(0 + 0.5 / 2.5 + 2 / 2) / 3, 0.0])  # the NaN patch is left out
    assert delta.tolist() == pytest.approx([1 / 3, 1.0])  # ratio 1.25 is not < 1.25


def test_target_rays_are_unit_directions_and_reference_frame_pluecker():
    cam_to_world = torch.stack(
        [torch.eye(4), torch.eye(4), pose(torch.eye(3), [0.0, 0.0, 0.0]), pose(torch.eye(3), [1, 2, 3])]
    )
    scenes = make_scenes(cam_to_world[None], num_context=2)
    rays = target_rays(scenes, (2, 2))
    assert rays.shape == (1, 2, 4, 9)  # target views only: views C..V-1
    directions = camera_rays(scenes.intrinsics[0, 2], (2, 2), (32, 32))
    assert torch.allclose(rays[0, 0, :, :3], directions) and torch.allclose(
        rays[0, 0, :, :3].norm(dim=-1), torch.ones(4)
    )
    assert torch.allclose(rays[0, 0, :, 3:6], directions) and not rays[0, 0, :, 6:].any()  # at the origin: o x d = 0
    moment = torch.cross(torch.tensor([1.0, 2.0, 3.0]).expand(4, 3), directions, dim=-1)
    assert torch.allclose(rays[0, 1, :, 6:], moment)


def depth_scenes(count: int, generator: torch.Generator, grid: int = 2):
    """Scenes of 4 identity-posed views whose depth is constant over each patch (some patches unknown)."""
    scenes = make_scenes(torch.eye(4).repeat(count, 4, 1, 1), num_context=2)
    per_patch = 1 + 4 * torch.rand(count, 4, grid, grid, generator=generator)
    per_patch[torch.rand(per_patch.shape, generator=generator) < 0.1] = 0.0
    side = 32 // grid
    scenes.depth = per_patch.repeat_interleave(side, 2).repeat_interleave(side, 3)
    return scenes, per_patch.flatten(2)


def view_features(per_patch: torch.Tensor, generator: torch.Generator, informative: bool) -> ProbeFeatures:
    count = len(per_patch)
    tokens = torch.randn(count, 2, 4, 8, generator=generator)
    if informative:
        tokens[..., 0] = per_patch[:, :2].clamp_min(0.5).log()  # context views; an unknown patch holds anything
    scene = torch.randn(count, 2, 8, generator=generator)
    return ProbeFeatures(scene, scene.clone(), tokens, (2, 2), False, True)


@pytest.mark.parametrize("informative", [True, False])
def test_view_depth_reads_log_depth_from_patch_tokens_and_not_from_noise(informative):
    generator = torch.Generator().manual_seed(0)
    (train, train_depth), (val, val_depth) = depth_scenes(60, generator), depth_scenes(20, generator)
    scores = view_depth(
        view_features(train_depth, generator, informative), view_features(val_depth, generator, informative), train, val
    )
    truth = val_depth[:, :2].where(val_depth[:, :2] > 0, torch.nan)
    floor_depth = train_depth[:, :2][train_depth[:, :2] > 0].log().mean().exp()  # the train mean of log depth
    floor = ((floor_depth - truth).abs() / truth).nanmean().item()
    if informative:
        assert score(scores, "AbsRel") < 1e-3 and score(scores, "δ<1.25") == 1.0
    else:
        assert score(scores, "AbsRel") == pytest.approx(floor, rel=0.1) and floor > 0.3


def test_target_depth_learns_the_depth_of_an_unseen_view_in_metres():
    """A wall at h normalized units in front of each target camera; metres are h * pose_scale / d_z.

    The scene token holds h alone: scores are only good if the probe works in normalized units and
    converts back to metres with each scene's own ``pose_scale``.
    """
    generator = torch.Generator().manual_seed(0)
    lift = torch.randn(2, 8, generator=generator)

    def walls(count: int):
        scenes = make_scenes(torch.eye(4).repeat(count, 4, 1, 1), num_context=2)
        focal = 16 + 32 * torch.rand(count, 4, generator=generator)
        scenes.intrinsics[..., 0, 0], scenes.intrinsics[..., 1, 1] = focal, focal
        scenes.pose_scale = 0.5 + 2 * torch.rand(count, generator=generator)
        height = 1 + 2 * torch.rand(count, generator=generator)
        d_z = camera_rays(scenes.intrinsics, (2, 2), (32, 32))[..., 2]  # S V 4, varies with the focal length
        metres = (height * scenes.pose_scale)[:, None, None] / d_z
        scenes.depth = metres.view(count, 4, 2, 2).repeat_interleave(16, 2).repeat_interleave(16, 3)
        tokens = (torch.stack([height, torch.ones_like(height)], -1) @ lift)[:, None].expand(count, 2, 8).contiguous()
        return scenes, ProbeFeatures(tokens, tokens, torch.zeros(count, 2, 4, 1), (2, 2), True, False)

    (train, train_features), (val, val_features) = walls(96), walls(32)
    scores = target_depth(train_features, val_features, train, val, seeds=[0], steps=150)
    assert score(scores, "AbsRel") < 0.1 and score(scores, "δ<1.25") > 0.95
    predicted = next(s for s in scores if s.metric == "AbsRel").extra["predicted"]
    assert predicted.shape == (32, 2, 4)  # scene, target view, patch


def test_reference_alone_scores_the_same_probe_on_the_reference_views_tokens():
    """The wall's distance reaches the scene tokens only through another context view: the reference
    view's tokens alone hold noise, so read from them the fitted probe misses; tokens that do not
    depend on the other views (reference alone = scene tokens) lose nothing."""
    generator = torch.Generator().manual_seed(2)
    lift = torch.randn(2, 8, generator=generator)

    def walls(count: int, fused: bool):
        scenes = make_scenes(torch.eye(4).repeat(count, 4, 1, 1), num_context=2)
        metres = 1 + 3 * torch.rand(count, generator=generator)
        d_z = camera_rays(scenes.intrinsics, (2, 2), (32, 32))[..., 2]
        scenes.depth = (metres[:, None, None] / d_z).view(count, 4, 2, 2).repeat_interleave(16, 2)
        scenes.depth = scenes.depth.repeat_interleave(16, 3)
        tokens = (torch.stack([metres, torch.ones_like(metres)], -1) @ lift)[:, None].expand(count, 2, 8).contiguous()
        noise = 1 + 3 * torch.rand(count, generator=generator)
        alone = (torch.stack([noise, torch.ones_like(noise)], -1) @ lift)[:, None].expand(count, 2, 8).contiguous()
        features = ProbeFeatures(tokens, tokens, torch.zeros(count, 2, 4, 1), (2, 2), True, False)
        features.reference_tokens = alone if fused else tokens.clone()
        return scenes, features

    for fused in (True, False):
        (train, train_features), (val, val_features) = walls(96, fused), walls(32, fused)
        train_features.reference_tokens = None  # train scenes skip it (frame_aware=False)
        scores = target_depth(train_features, val_features, train, val, seeds=[0], steps=150, units="metric")
        full = score(scores, "AbsRel")
        alone = next(s for s in scores if s.probe == "target_depth/reference_alone").mean
        assert full < 0.1
        assert (alone > 3 * full) if fused else alone == pytest.approx(full)
    val_features.reference_tokens = None
    scores = target_depth(train_features, val_features, train, val, seeds=[0], steps=1, units="metric")
    assert not any(s.probe == "target_depth/reference_alone" for s in scores)


def test_metric_target_depth_reads_metres_from_tokens_that_hold_metres():
    """``units="metric"``: the scene token holds the wall's distance in metres (what images show), the rays
    stay normalized; the probe regresses metres directly and must score well without any pose scale."""
    generator = torch.Generator().manual_seed(1)
    lift = torch.randn(2, 8, generator=generator)

    def walls(count: int):
        scenes = make_scenes(torch.eye(4).repeat(count, 4, 1, 1), num_context=2)
        scenes.pose_scale = 0.5 + 2 * torch.rand(count, generator=generator)  # unknown to the tokens
        metres = 1 + 3 * torch.rand(count, generator=generator)
        d_z = camera_rays(scenes.intrinsics, (2, 2), (32, 32))[..., 2]
        scenes.depth = (metres[:, None, None] / d_z).view(count, 4, 2, 2).repeat_interleave(16, 2)
        scenes.depth = scenes.depth.repeat_interleave(16, 3)
        tokens = (torch.stack([metres, torch.ones_like(metres)], -1) @ lift)[:, None].expand(count, 2, 8).contiguous()
        return scenes, ProbeFeatures(tokens, tokens, torch.zeros(count, 2, 4, 1), (2, 2), True, False)

    (train, train_features), (val, val_features) = walls(96), walls(32)
    scores = target_depth(train_features, val_features, train, val, seeds=[0], steps=150, units="metric")
    assert score(scores, "AbsRel") < 0.1
    with pytest.raises(ValueError, match="units"):
        target_depth(train_features, val_features, train, val, seeds=[0], steps=1, units="feet")


def test_a_scene_without_valid_depth_is_left_out_not_scored_perfect():
    from psfm.probes.depth import depth_scores

    truth = torch.tensor([[2.0, 4.0], [float("nan"), float("nan")]])
    predicted = torch.tensor([[1.0, 4.0], [3.0, 3.0]])
    rel, delta = depth_scores(predicted, truth)
    assert rel[0].item() == 0.25 and delta[0].item() == 0.5
    assert torch.isnan(rel[1]) and torch.isnan(delta[1])


def test_scale_alignment_forgives_a_wrong_size_and_nothing_else():
    """The truth times a per-view factor scores 0 once aligned (and badly in metres); a flat guess keeps
    every error of the shape it does not know, whatever its scale."""
    from psfm.objectives.losses import median_aligned
    from psfm.probes.depth import depth_scores

    generator = torch.Generator().manual_seed(0)
    truth = 1 + 4 * torch.rand(6, 3, 16, generator=generator)
    truth[0, 0, :5] = torch.nan  # unknown patches neither vote in the median nor get scored
    truth[1, 1] = torch.nan  # a view with no known patch stays NaN, not perfect
    scaled = truth.nan_to_num(1.0) * (0.3 + 3 * torch.rand(6, 3, 1, generator=generator))
    assert depth_scores(scaled, truth)[0].mean() > 0.3
    assert depth_scores(median_aligned(scaled, truth), truth)[0].max() < 1e-6
    flat = torch.full_like(truth, 7.0)
    aligned = median_aligned(flat, truth)
    best_flat = truth.nanmedian(-1, keepdim=True).values.nan_to_num(7.0).expand_as(truth)
    assert torch.allclose(aligned, best_flat)
    assert depth_scores(aligned, truth)[0].mean() > 0.2
