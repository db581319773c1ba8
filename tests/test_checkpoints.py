"""Weight files users bring: a psfm export's backbone becomes the (frozen) backbone of the next run."""

from __future__ import annotations

import pytest
import torch

from psfm.checkpoints import load_state_dict
from psfm.encoders.backbones import BACKBONES
from psfm.export import export_encoder
from psfm.training.config import BackboneConfig, EncoderConfig
from psfm.training.model import build_encoder

ARCH = {"depth": 1, "embed_dim": 32}


@pytest.fixture
def export(tmp_path):
    backbone = BackboneConfig(name="vit_test", img_size=32, overrides=ARCH)
    torch.manual_seed(7)
    encoder = build_encoder(backbone, EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1))
    export_encoder(encoder, backbone, EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4), (32, 32), tmp_path)
    return tmp_path, encoder


@pytest.mark.parametrize("target", ["folder", "encoder.safetensors"])
def test_a_psfm_export_loads_as_a_backbone_checkpoint(export, target):
    folder, encoder = export
    path = folder if target == "folder" else folder / "encoder.safetensors"
    backbone = BACKBONES.build("vit_test", img_size=32, checkpoint=str(path), frozen=True, **ARCH)
    mine, theirs = backbone.state_dict(), encoder.backbone.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[key], theirs[key]) for key in mine)
    assert not any(param.requires_grad for param in backbone.parameters())


def test_only_the_backbone_of_an_export_is_returned(export):
    state = load_state_dict(export[0])
    assert state and all(key.startswith("model.") for key in state)  # no latent-encoder weight leaks in


def test_an_export_of_another_backbone_shape_is_refused_by_name(export):
    with pytest.raises(ValueError, match=r"does not fit VisionTransformer: missing"):
        BACKBONES.build("vit_test", img_size=32, checkpoint=str(export[0]), depth=2, embed_dim=32)
