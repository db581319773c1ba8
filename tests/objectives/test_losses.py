"""Feature and depth-probe losses on cases whose value is known by hand."""

from __future__ import annotations

import math

import pytest
import torch

from psfm.objectives.losses import depth_probe_loss, feature_loss, normalize_targets, patch_depth


def test_feature_loss_is_zero_when_prediction_equals_target():
    target = torch.randn(2, 3, 5, 8)

    loss, parts = feature_loss(target.clone(), target)

    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert parts["l1"].item() == 0.0 and parts["cosine"].item() == pytest.approx(0.0, abs=1e-6)


def test_feature_loss_cosine_part_is_one_minus_cosine():
    prediction = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 2.0], [6.0, 8.0]])  # orthogonal (cos 0), then parallel (cos 1)

    loss, parts = feature_loss(prediction, target, l1_weight=0.0, cosine_weight=1.0)

    assert parts["cosine"].item() == pytest.approx(((1 - 0) + (1 - 1)) / 2)
    assert loss.item() == pytest.approx(0.5)
    antiparallel, _ = feature_loss(torch.tensor([[1.0, 1.0]]), torch.tensor([[-2.0, -2.0]]), 0.0, 1.0)
    assert antiparallel.item() == pytest.approx(2.0)


def test_feature_loss_cosine_is_taken_per_patch_over_the_feature_axis():
    # real predictions are [B, T, N, Dt]: the cosine must run over Dt, not over axis 1 (the default of
    # F.cosine_similarity, which is the feature axis only for 2-D inputs like the ones above; mutation
    # testing: dim=-1 dropped or turned into +1 survived)
    generator = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(2, 3, 4, 5, generator=generator), torch.randn(2, 3, 4, 5, generator=generator)
    per_patch = (prediction * target).sum(-1) / (prediction.norm(dim=-1) * target.norm(dim=-1))

    _, parts = feature_loss(prediction, target)

    assert parts["cosine"].item() == pytest.approx((1 - per_patch).mean().item(), rel=1e-5)


def test_feature_loss_smooth_l1_part_has_its_known_value():
    prediction = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([[0.5, -0.2, 3.0, -1.5]])
    # smooth L1 (beta 1): 0.5 x^2 below 1, |x| - 0.5 above; mean over all elements
    expected = (0.5 * 0.25 + 0.5 * 0.04 + 2.5 + 1.0) / 4

    loss, parts = feature_loss(prediction, target, l1_weight=2.0, cosine_weight=0.0)

    assert parts["l1"].item() == pytest.approx(expected)
    assert loss.item() == pytest.approx(2 * expected)
    both, _ = feature_loss(prediction + 1.0, target, l1_weight=1.0, cosine_weight=3.0)
    _, separate = feature_loss(prediction + 1.0, target)
    assert both.item() == pytest.approx(separate["l1"].item() + 3 * separate["cosine"].item())


def test_feature_loss_parts_are_detached_and_the_loss_has_gradient():
    prediction = torch.randn(4, 6, requires_grad=True)

    loss, parts = feature_loss(prediction, torch.randn(4, 6))
    loss.backward()

    assert not parts["l1"].requires_grad and not parts["cosine"].requires_grad
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


def test_normalize_targets_layernorm_standardizes_each_patch():
    targets = 100 * torch.randn(2, 3, 4, 16) + 7

    normalized = normalize_targets(targets, "layernorm")

    torch.testing.assert_close(normalized.mean(-1), torch.zeros(2, 3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalized.var(-1, correction=0), torch.ones(2, 3, 4), atol=1e-3, rtol=0)
    assert normalize_targets(targets, "none") is targets


def test_normalize_targets_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="target_norm must be 'none' or 'layernorm', got 'batchnorm'"):
        normalize_targets(torch.zeros(1, 4), "batchnorm")


def test_patch_depth_averages_known_pixels_only():
    depth = torch.zeros(1, 1, 4, 4)
    depth[0, 0, :2, :2] = torch.tensor([[2.0, 4.0], [0.0, 6.0]])  # one unknown pixel of four
    depth[0, 0, :2, 2:] = torch.tensor([[3.0, 0.0], [0.0, 0.0]])  # three unknown of four: too few known
    depth[0, 0, 2:, :2] = torch.tensor([[1.0, 5.0], [0.0, 0.0]])  # exactly half known: still invalid
    depth[0, 0, 2:, 2:] = 8.0

    mean, valid = patch_depth(depth, (2, 2))

    assert mean.shape == (1, 4) and valid.shape == (1, 4)
    assert valid.tolist() == [[True, False, False, True]]
    torch.testing.assert_close(mean[0, [0, 3]], torch.tensor([4.0, 8.0]))  # (2 + 4 + 6) / 3: zeros ignored
    assert mean[0, 1].item() == pytest.approx(3.0) and mean[0, 2].item() == pytest.approx(3.0)


def test_depth_probe_loss_on_a_known_case():
    depth = torch.zeros(1, 1, 2, 4)
    depth[0, 0, :, :2] = 2.0
    depth[0, 0, :, 2:] = 4.0
    log_depth = torch.tensor([[math.log(3.0), math.log(4.0)]], requires_grad=True)  # 50 % off, then exact

    loss, abs_rel = depth_probe_loss(log_depth, depth, (1, 2))

    assert loss.item() == pytest.approx(math.log(1.5) / 2)
    assert abs_rel.item() == pytest.approx((0.5 + 0.0) / 2)
    loss.backward()
    assert log_depth.grad is not None and log_depth.grad[0, 0] > 0
    assert not abs_rel.requires_grad


def test_depth_probe_loss_skips_unknown_patches_and_is_zero_without_any():
    depth = torch.zeros(1, 1, 2, 4)
    depth[0, 0, :, 2:] = 4.0
    log_depth = torch.tensor([[100.0, math.log(2.0)]], requires_grad=True)  # the unknown patch's guess is wild

    loss, abs_rel = depth_probe_loss(log_depth, depth, (1, 2))

    assert loss.item() == pytest.approx(math.log(2.0))
    assert abs_rel.item() == pytest.approx(0.5)

    nothing, nothing_abs_rel = depth_probe_loss(log_depth, torch.zeros(1, 1, 2, 4), (1, 2))
    assert nothing.item() == 0.0 and nothing_abs_rel.item() == 0.0
    nothing.backward()  # still part of the graph, so a step without depth does not break backward
    assert log_depth.grad is not None and log_depth.grad.abs().sum() == 0
