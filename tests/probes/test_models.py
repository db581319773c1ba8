"""Probe heads: each learns a trivially learnable target and stays at the floor on random features."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from psfm.probes.models import AttentiveProbe, RayDepthProbe, Ridge, fit_probe, second_half_gain


def r_squared(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    return 1 - ((predicted - truth).square().sum() / (truth - truth.mean(0)).square().sum()).item()


def mse(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (model(tokens) - targets).square().mean()


def test_ridge_recovers_a_linear_map():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=generator) * torch.tensor([1.0, 5.0, 0.1, 2.0, 1.0, 30.0])
    weights, bias = torch.randn(6, 2, generator=generator), torch.tensor([3.0, -1.0])
    y = x @ weights + bias + 1e-3 * torch.randn(300, 2, generator=generator)
    ridge = Ridge().fit(x[:200], y[:200])
    assert r_squared(ridge.predict(x[200:]), y[200:]) > 0.99
    assert ridge.alpha == min(ridge.alphas)  # nothing to shrink on a noiseless linear map


def test_ridge_ignores_rows_with_a_nan_target():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(120, 3, generator=generator)
    y = x @ torch.tensor([[1.0], [2.0], [-1.0]])
    y[::7] = torch.nan
    predicted = Ridge().fit(x[:100], y[:100]).predict(x[100:])
    keep = ~torch.isnan(y[100:, 0])
    assert not torch.isnan(predicted).any()
    assert r_squared(predicted[keep], y[100:][keep]) > 0.99


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ridge_on_noise_predicts_the_train_mean(seed):
    """Few rows and many noise features: least squares would overfit (held-out MSE ~3x the variance)."""
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(480, 40, generator=generator), 5 + 2 * torch.randn(480, 1, generator=generator)
    ridge = Ridge().fit(x[:80], y[:80])
    predicted = ridge.predict(x[80:])
    variance = y[80:].var().item()
    assert (predicted - y[80:]).square().mean().item() < 1.1 * variance
    assert (predicted - y[:80].mean()).abs().max().item() < 0.3 * math.sqrt(variance)  # ~ the train mean


def flagged_sets(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sets of 6 tokens, one flagged (channel 0); target: channel 1 of the flagged token.

    Tokens are layer-normalized already, so the probe's own LayerNorm keeps the target exact.
    Mean pooling cannot find the flagged token: only attention can.
    """
    tokens = torch.randn(count, 6, 16, generator=generator)
    tokens[:, :, 0] = -1.0
    flagged = torch.randint(6, (count,), generator=generator)
    tokens[torch.arange(count), flagged, 0] = 3.0
    tokens = F.layer_norm(tokens, (16,))
    return tokens, tokens[torch.arange(count), flagged, 1:2]


def test_attentive_probe_learns_a_set_function_that_needs_attention():
    generator = torch.Generator().manual_seed(0)
    (tokens, targets), (val_tokens, val_targets) = flagged_sets(1024, generator), flagged_sets(256, generator)
    torch.manual_seed(0)
    model = fit_probe(AttentiveProbe(16, 1), (tokens, targets), mse, steps=200, lr=3e-3, eval_every=25)
    with torch.no_grad():
        error = mse(model, val_tokens, val_targets).item() / val_targets.var().item()
    assert error < 0.05
    pooled = Ridge().fit(tokens.mean(1), targets).predict(val_tokens.mean(1))
    assert (pooled - val_targets).square().mean().item() / val_targets.var().item() > 0.6  # needs attention


def test_attentive_probe_on_random_features_stays_at_the_variance():
    generator = torch.Generator().manual_seed(1)
    tokens, targets = torch.randn(600, 6, 16, generator=generator), torch.randn(600, 1, generator=generator)
    torch.manual_seed(0)
    model = fit_probe(AttentiveProbe(16, 1), (tokens[:400], targets[:400]), mse, steps=100, lr=3e-3, eval_every=25)
    with torch.no_grad():
        error = mse(model, tokens[400:], targets[400:]).item() / targets[400:].var().item()
    assert 0.85 < error < 1.5


def test_fit_probe_returns_the_best_holdout_weights_in_eval_mode():
    """Training steps push w up without end; the holdout loss is lowest at w = 0.3: keep that checkpoint."""
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    holdout_losses = []

    def loss_fn(net: nn.Module, items: torch.Tensor) -> torch.Tensor:
        if net.training:
            return -net.weight.sum()
        loss = (net.weight.sum() - 0.3).square()
        holdout_losses.append(loss.item())
        return loss

    returned = fit_probe(model, (torch.zeros(40, 1),), loss_fn, steps=100, lr=0.02, weight_decay=0.0, eval_every=5)
    assert returned is model and not returned.training
    assert len(holdout_losses) == 20 and holdout_losses[-1] > 10 * min(holdout_losses)  # the last is not the best
    with torch.no_grad():
        assert (model.weight.sum() - 0.3).square().item() == pytest.approx(min(holdout_losses))
    assert [step for step, _ in model.holdout_curve] == list(range(5, 101, 5))
    assert [loss for _, loss in model.holdout_curve] == pytest.approx(holdout_losses)


def test_fit_probe_stops_once_the_holdout_loss_has_not_improved_for_patience_steps():
    """Best at step 15, worse ever after: with patience 100 the fit ends at step 115, not 5000."""
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)

    def loss_fn(net: nn.Module, items: torch.Tensor) -> torch.Tensor:
        return -net.weight.sum() if net.training else (net.weight.sum() - 0.3).square()

    def fit(patience):
        nn.init.zeros_(model.weight)
        return fit_probe(
            model, (torch.zeros(40, 1),), loss_fn, 5000, lr=0.02, weight_decay=0.0, eval_every=5, patience=patience
        )

    stopped = fit(100)
    assert stopped.holdout_curve[-1][0] == 115
    assert min(stopped.holdout_curve, key=lambda point: point[1])[0] == 15
    with torch.no_grad():
        assert stopped.weight.item() == pytest.approx(0.3, abs=1e-3)  # the best weights, not the last
    assert fit(None).holdout_curve[-1][0] == 5000


def test_fit_probe_that_keeps_improving_runs_every_step():
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)

    def loss_fn(net: nn.Module, items: torch.Tensor) -> torch.Tensor:
        return -net.weight.sum()  # training and holdout alike: every step is better

    fitted = fit_probe(
        model, (torch.zeros(40, 1),), loss_fn, 300, lr=0.01, weight_decay=0.0, eval_every=10, patience=20
    )
    assert fitted.holdout_curve[-1][0] == 300


def test_second_half_gain_tells_a_converged_fit_from_one_still_learning():
    steps = range(100, 1001, 100)
    assert second_half_gain([(s, 0.5) for s in steps]) == 0.0  # flat from the start: converged
    assert second_half_gain([(s, 1 / s) for s in steps]) == pytest.approx(1 - 0.001 / 0.002)  # still halving
    assert second_half_gain([(s, 0.5 if s <= 500 else 0.9) for s in steps]) == 0.0  # overfit late: the best is early
    assert math.isnan(second_half_gain([(100, 0.5)])) and math.isnan(second_half_gain([(s, -1.0) for s in steps]))


def plane_scenes(count: int, lift: torch.Tensor, generator: torch.Generator, rays_per_scene: int = 8):
    """A camera facing a wall at distance h (the scene token, lifted to 8 channels): depth along ray d is h / d_z."""
    height = 1 + 3 * torch.rand(count, generator=generator)
    tokens = (torch.stack([height, torch.ones_like(height)], -1) @ lift)[:, None].expand(count, 2, 8).contiguous()
    xy = 2 * torch.rand(count, rays_per_scene, 2, generator=generator) - 1
    directions = F.normalize(torch.cat([xy, torch.ones(count, rays_per_scene, 1)], -1), dim=-1)
    rays = torch.cat([directions, directions, torch.zeros_like(directions)], -1)  # camera at the origin: o x d = 0
    return tokens, rays, height[:, None] / directions[..., 2], height


def fit_ray_probe(tokens, rays, depth, val_tokens, val_rays) -> torch.Tensor:
    def loss_fn(model: RayDepthProbe, scene: torch.Tensor, ray: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (model(tokens[scene], ray) - target.log()).abs().mean()

    torch.manual_seed(0)
    model = RayDepthProbe(8, dim=32, depth=1, num_heads=2)
    fit_probe(model, (torch.arange(len(tokens)), rays, depth), loss_fn, steps=200, lr=3e-3, eval_every=25)
    with torch.no_grad():
        return model(val_tokens, val_rays).exp()


def test_ray_depth_probe_reads_depth_from_scene_tokens_and_rays():
    generator = torch.Generator().manual_seed(0)
    lift = torch.randn(2, 8, generator=generator)
    tokens, rays, depth, height = plane_scenes(256, lift, generator)
    val_tokens, val_rays, val_depth, val_height = plane_scenes(64, lift, generator)
    rays_only = (height.median() / val_height - 1).abs().mean().item()  # best a probe blind to h can do (L1 in log)
    assert rays_only > 0.25

    learned = fit_ray_probe(tokens, rays, depth, val_tokens, val_rays)
    assert ((learned - val_depth).abs() / val_depth).mean().item() < 0.06

    noise = torch.randn(tokens.shape, generator=generator), torch.randn(val_tokens.shape, generator=generator)
    blind = fit_ray_probe(noise[0], rays, depth, noise[1], val_rays)
    assert ((blind - val_depth).abs() / val_depth).mean().item() > 0.8 * rays_only
