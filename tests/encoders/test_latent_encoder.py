"""Latent encoder and backbones: shapes, gradients, and invariance to the order of context views."""

from __future__ import annotations

import pytest
import torch

from psfm.encoders.backbones import BACKBONES
from psfm.encoders.latent import LatentEncoder
from psfm.encoders.spatial import SpatialEncoder
from psfm.registry import Registry


def tiny_encoder(**kwargs) -> SpatialEncoder:
    backbone = BACKBONES.build("vit_test", img_size=32)
    options = {"dim": 32, "depth": 2, "num_heads": 4, "num_latents": 8, "num_registers": 2, **kwargs}
    return SpatialEncoder(backbone, LatentEncoder(in_dim=backbone.dim, **options))


FACTORY = """
import torch
from torch import nn


class Patchify(nn.Module):
    dim, patch_size = 24, 16

    def __init__(self, scale=1.0):
        super().__init__()
        self.proj = nn.Conv2d(3, 24, 16, stride=16)
        self.scale = scale

    def forward(self, images):
        return self.proj(images * self.scale).flatten(2).transpose(1, 2)


def build(scale=1.0):
    return Patchify(scale)


def broken():
    return nn.Linear(2, 2)
"""


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "my_backbone_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_backbone_factory"


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_gives_patch_tokens_and_gradients(name, factory_module):
    if name == "module":
        backbone = BACKBONES.build(name, factory=f"{factory_module}:build", frozen=False, kwargs={"scale": 2.0})
    elif name == "timm":
        backbone = BACKBONES.build(
            name, model_name="vit_small_patch16_224", img_size=32, depth=1, embed_dim=32, num_heads=2
        )
    else:
        backbone = BACKBONES.build(name, img_size=32, depth=1)
    out = backbone(torch.rand(3, 3, 32, 48))
    assert out.grid == (2, 3) and out.tokens.shape == (3, 6, backbone.dim)
    out.tokens.square().mean().backward()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)


def test_module_backbone_is_frozen_by_default_and_checks_its_module(factory_module):
    backbone = BACKBONES.build("module", factory=f"{factory_module}:build")
    assert not any(p.requires_grad for p in backbone.parameters())
    with pytest.raises(ValueError, match=r"without int attribute\(s\) \['dim', 'patch_size'\]"):
        BACKBONES.build("module", factory=f"{factory_module}:broken")


def test_backbone_refuses_sizes_off_the_patch_grid():
    with pytest.raises(ValueError, match="not a multiple of the patch size 16"):
        BACKBONES.build("vit_test", img_size=32)(torch.rand(1, 3, 30, 32))


def test_frozen_backbone_has_no_gradients_and_stays_in_eval():
    backbone = BACKBONES.build("vit_test", img_size=32, frozen=True)
    backbone.train()
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())


def test_encoder_shapes_and_every_parameter_gets_a_gradient():
    encoder = tiny_encoder()
    out = encoder(torch.rand(2, 3, 3, 32, 32))
    assert out.latents.shape == (2, 8, 32) and out.registers.shape == (2, 2, 32)
    assert encoder.num_tokens == 8 and encoder.dim == 32
    out.latents.square().mean().backward()
    missing = [name for name, p in encoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_latents_ignore_the_order_of_the_non_reference_views_only():
    """Target poses live in view 0's frame, so view 0 must be told apart; the other views form a set."""
    torch.manual_seed(0)
    encoder = tiny_encoder().eval()
    images = torch.rand(2, 4, 3, 32, 32)
    reference = encoder(images).latents
    for order in ([0, 3, 1, 2], [0, 2, 3, 1]):
        assert torch.allclose(encoder(images[:, order]).latents, reference, atol=1e-5)
    for order in ([1, 0, 2, 3], [3, 1, 2, 0]):  # another view becomes the reference: another frame
        assert (encoder(images[:, order]).latents - reference).abs().max() > 1e-2
    # and they depend on the content of each view (the test can fail)
    changed = images.clone()
    changed[:, 2] = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(encoder(changed).latents, reference, atol=1e-3)


def test_without_the_reference_mark_every_order_gives_the_same_latents():
    torch.manual_seed(0)
    encoder = tiny_encoder(reference_view=False).eval()
    assert encoder.latent.reference_embed is None
    images = torch.rand(2, 4, 3, 32, 32)
    reference = encoder(images).latents
    for order in ([3, 1, 0, 2], [1, 2, 3, 0]):
        assert torch.allclose(encoder(images[:, order]).latents, reference, atol=1e-5)


def _fit_reference_task(reference_view: bool, steps: int = 300) -> tuple[float, float]:
    """Train encoder + linear readout to output the reference view's mean token; returns (test mse, floor).

    The answer depends on *which* view is view 0, as a target pose does. An encoder that cannot
    tell view 0 apart can at best answer the mean over views, whose expected error per channel is
    (1 - 1 / C) · var(view mean): the floor.
    """
    torch.manual_seed(0)
    views, tokens, channels = 3, 4, 8
    latent = LatentEncoder(
        in_dim=channels, dim=32, depth=2, num_heads=4, num_latents=4, num_registers=1, reference_view=reference_view
    )
    readout = torch.nn.Linear(4 * 32, channels)
    optimizer = torch.optim.Adam([*latent.parameters(), *readout.parameters()], lr=2e-3)

    def sample(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(batch, views, tokens, channels)
        return x, x[:, 0].mean(1)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return readout(latent(x, (2, 2)).latents.flatten(1))

    for _ in range(steps):
        x, y = sample(64)
        loss = (predict(x) - y).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = sample(512)
    with torch.no_grad():
        error = (predict(x) - y).square().mean().item()
    floor = (1 - 1 / views) / tokens  # var of a view's mean token is 1 / tokens per channel
    return error, floor


def test_an_encoder_with_the_reference_mark_learns_a_reference_dependent_answer():
    marked, floor = _fit_reference_task(reference_view=True)
    unmarked, _ = _fit_reference_task(reference_view=False)
    assert unmarked > 0.85 * floor, "without the mark nothing beats the mean over views"
    assert marked < 0.3 * floor, f"with the mark the reference view is readable ({marked:.3f} vs floor {floor:.3f})"


def test_patch_positions_matter_to_the_latents():
    """RoPE makes a spatially shuffled view a different input (positions are not ignored)."""
    torch.manual_seed(0)
    encoder = tiny_encoder().eval()
    tokens = torch.randn(1, 2, 4, encoder.backbone.dim)
    base = encoder.latent(tokens, (2, 2)).latents
    swapped = encoder.latent(tokens[:, :, [1, 0, 2, 3]], (2, 2)).latents
    assert not torch.allclose(base, swapped, atol=1e-4)


def test_registry_names_unknown_entries_with_a_suggestion():
    registry: Registry[int] = Registry("widget")
    registry.register("pixels")(lambda: 1)
    with pytest.raises(KeyError, match="unknown widget 'pixel'; did you mean 'pixels'"):
        registry.build("pixel")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("pixels")(lambda: 2)


def test_the_posed_context_ablation_reads_the_context_cameras_and_needs_them():
    """Same images, other context cameras: other latents; and either form refuses the other's call."""
    from psfm.objectives.rays import plucker_rays

    torch.manual_seed(0)
    latent = LatentEncoder(in_dim=16, dim=32, depth=1, num_heads=2, num_latents=4, posed_context=True).eval()
    tokens = torch.randn(2, 3, 4, 16)
    intrinsics = torch.tensor([[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]).expand(2, 3, 3, 3)
    poses = torch.eye(4).expand(2, 3, 4, 4).clone()
    moved = poses.clone()
    moved[:, 1, :3, 3] = torch.tensor([1.0, 0.0, 0.0])
    first = latent(tokens, (2, 2), plucker_rays(intrinsics, poses, (2, 2), (8, 8))).latents
    second = latent(tokens, (2, 2), plucker_rays(intrinsics, moved, (2, 2), (8, 8))).latents
    assert (first - second).abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs context_rays"):
        latent(tokens, (2, 2))
    unposed = LatentEncoder(in_dim=16, dim=32, depth=1, num_heads=2, num_latents=4)
    with pytest.raises(ValueError, match="takes no rays"):
        unposed(tokens, (2, 2), plucker_rays(intrinsics, poses, (2, 2), (8, 8)))
