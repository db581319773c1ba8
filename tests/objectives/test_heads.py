"""Prediction heads: output shapes, and the depth probe's detached input."""

from __future__ import annotations

import torch
from torch import nn

from psfm.objectives.heads import DepthProbe, FeatureHead


def test_feature_head_is_layernorm_linear_gelu_linear_with_a_hidden_width_of_twice_the_input():
    # the documented architecture; mutation testing dropped the GELU or made the hidden width
    # 3 x dim and no test noticed: the objective tests only check shapes and that the loss falls
    head = FeatureHead(8, 4)

    assert [type(layer) for layer in head.net] == [nn.LayerNorm, nn.Linear, nn.GELU, nn.Linear]
    assert (head.net[1].out_features, head.net[3].out_features) == (16, 4)
    assert FeatureHead(8, 4, hidden=5).net[1].out_features == 5
    assert head(torch.randn(2, 3, 8)).shape == (2, 3, 4)


def test_depth_probe_gives_one_log_depth_per_patch_and_shapes_nothing():
    # [B, T, N, D] -> [B, T, N]: squeezing another axis leaves [B, T, N, 1], which broadcasts silently against
    # [B, T, N] depth targets (mutation testing: squeeze(+1) and squeeze(-2) survived, both no-ops on the
    # shapes the objective tests use)
    probe = DepthProbe(8)
    features = torch.randn(2, 3, 5, 8, requires_grad=True)

    depth = probe(features)

    assert depth.shape == (2, 3, 5)
    assert probe(torch.randn(2, 1, 1, 8)).shape == (2, 1, 1)  # size-1 axes other than the last stay
    depth.sum().backward()
    assert features.grad is None, "the probe reads detached features"


def test_depth_probe_normalizes_its_input():
    # the probe's LayerNorm makes it blind to the decoder features' scale, which drifts during training
    # (mutation testing: the LayerNorm dropped survived)
    probe = DepthProbe(8)
    features = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(probe(10 * features + 3), probe(features), rtol=1e-4, atol=1e-4)
