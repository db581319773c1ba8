"""``module`` backbones with ``joint_views``: a scene's views go through the network together (VGGT)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from psfm.encoders.backbones import BACKBONES
from psfm.encoders.spatial import SpatialEncoder

FACTORY = """
from torch import nn


class CrossView(nn.Module):
    '''scenes [B, V, 3, H, W] -> tokens [B, V, N, 8]: each view's patches plus its scene's mean over views.'''

    dim, patch_size = 8, 16

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 16, stride=16)

    def forward(self, scenes):
        tokens = self.proj(scenes.flatten(0, 1)).flatten(2).transpose(1, 2).unflatten(0, scenes.shape[:2])
        return tokens + tokens.mean(dim=1, keepdim=True)


def build():
    return CrossView()


def build_per_view_layout():
    view = CrossView()
    view.forward = lambda scenes: view.proj(scenes.flatten(0, 1)).flatten(2).transpose(1, 2)  # [B V, N, D]
    return view
"""


@pytest.fixture
def factory_module(tmp_path, monkeypatch) -> str:
    (tmp_path / "my_joint_backbone_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_joint_backbone_factory"


def joint_encoder(factory: str) -> SpatialEncoder:
    backbone = BACKBONES.build("module", factory=factory, joint_views=True)
    return SpatialEncoder(backbone, nn.Identity())  # encode_views only needs the backbone


def test_encode_views_hands_whole_scenes_to_a_joint_backbone(factory_module):
    encoder = joint_encoder(f"{factory_module}:build")
    scenes = torch.rand(2, 3, 3, 32, 48, generator=torch.Generator().manual_seed(0))  # B V 3 H W

    out = encoder.encode_views(scenes)

    assert encoder.backbone.joint_views and out.grid == (2, 3) and out.tokens.shape == (2, 3, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(out.tokens, encoder.backbone.net(scenes))
    repainted = scenes.clone()
    repainted[0, 2] = torch.rand(3, 32, 48)
    after = encoder.encode_views(repainted).tokens
    assert not torch.allclose(after[0, 0], out.tokens[0, 0], atol=1e-4), "view 0 must see view 2 of its scene"
    torch.testing.assert_close(after[1], out.tokens[1], rtol=0, atol=0)  # another scene is untouched


def test_a_single_image_is_a_one_view_scene(factory_module):
    backbone = BACKBONES.build("module", factory=f"{factory_module}:build", joint_views=True)
    images = torch.rand(4, 3, 32, 32)

    out = backbone(images)

    assert out.tokens.shape == (4, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(out.tokens, backbone.net(images[:, None])[:, 0])


def test_a_per_view_backbone_still_sees_views_alone(factory_module):
    per_view = BACKBONES.build("vit_test", img_size=32, depth=1)
    encoder = SpatialEncoder(per_view, nn.Identity())
    scenes = torch.rand(2, 3, 3, 32, 32)

    torch.testing.assert_close(
        encoder.encode_views(scenes).tokens, per_view(scenes.flatten(0, 1)).tokens.unflatten(0, (2, 3))
    )
    torch.testing.assert_close(per_view.forward_views(scenes).tokens, encoder.encode_views(scenes).tokens)


def test_a_joint_backbone_with_the_per_view_layout_is_refused(factory_module):
    encoder = joint_encoder(f"{factory_module}:build_per_view_layout")

    with pytest.raises(ValueError, match=r"expected \[B, V, N, D\] with leading shape \(2, 3, 4\)"):
        encoder.encode_views(torch.rand(2, 3, 3, 32, 32))


def test_a_pretrain_model_trains_with_a_joint_backbone_and_a_joint_teacher(factory_module):
    from psfm.training.config import BackboneConfig, DecoderConfig, EncoderConfig, ModelConfig, ObjectiveConfig
    from psfm.training.model import PretrainModel
    from tests.conftest import make_batch

    factory = f"{factory_module}:build"
    config = ModelConfig(
        backbone=BackboneConfig(name="module", overrides={"factory": factory, "joint_views": True}),
        encoder=EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1),
        objective=ObjectiveConfig(decoder=DecoderConfig(depth=1, num_heads=2)),
        teachers={"geometry": {"name": "module", "options": {"factory": factory, "joint_views": True}}},
    )
    torch.manual_seed(0)
    model = PretrainModel(config)

    out = model(make_batch(batch_size=2, num_views=4, num_context=2, size=32))
    out["loss"].backward()

    assert model.encoder.backbone.joint_views and model.teachers["geometry"].joint_views
    assert torch.isfinite(out["loss"]) and model.objective.heads["geometry"].net[-1].weight.grad is not None
