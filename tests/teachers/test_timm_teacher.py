"""The timm teacher: local checkpoints load exactly, wrong ones fail naming the file, ViT and CNN layouts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm
import torch

from psfm.teachers import build_teacher


def normalized(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    return (images - mean) / std


def test_vit_checkpoint_gives_that_models_patch_tokens(tmp_path: Path, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    reference = timm.create_model("test_vit", dynamic_img_size=True).eval()  # with its classifier head
    path = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), path)

    teacher = build_teacher("timm", model_name="test_vit", checkpoint=str(path), img_size=64)
    targets = teacher(images, (4, 4))

    with torch.no_grad():
        tokens = reference.forward_features(normalized(reference, images))
    assert reference.num_prefix_tokens == 1 and tokens.shape == (2, 17, 64)
    assert teacher.dim == 64
    torch.testing.assert_close(targets, tokens[:, 1:], rtol=1e-5, atol=1e-5)
    random_teacher = build_teacher("timm", model_name="test_vit", img_size=64)
    assert not torch.allclose(random_teacher(images, (4, 4)), targets, atol=1e-3), "checkpoint was not used"


def test_cnn_checkpoint_gives_its_last_feature_map(tmp_path: Path, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet").eval()
    path = tmp_path / "resnet.safetensors"
    from safetensors.torch import save_file

    save_file(reference.state_dict(), str(path))

    teacher = build_teacher("timm", model_name="test_resnet", checkpoint=path, img_size=128)
    targets = teacher(images, (4, 4))

    upsampled = torch.nn.functional.interpolate(images, size=(128, 128), mode="bilinear", antialias=True)
    with torch.no_grad():
        feature_map = reference.forward_features(normalized(reference, upsampled))
    assert feature_map.shape == (2, 96, 4, 4) and teacher.dim == 96
    torch.testing.assert_close(targets, feature_map.flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_wrong_architecture_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "not_a_vit.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)

    with pytest.raises(ValueError, match="not_a_vit.pth") as error:
        build_teacher("timm", model_name="test_vit", checkpoint=path, img_size=64)
    assert "missing" in str(error.value)


def test_missing_checkpoint_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_teacher("timm", model_name="test_vit", checkpoint=tmp_path / "nowhere.pth")


def test_random_teacher_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="psfm.teachers.timm_teacher"):
        build_teacher("timm", model_name="test_vit", img_size=32)

    assert "teaches nothing useful" in caplog.text


def test_vit_grid_is_resampled_to_the_student_grid(images: torch.Tensor) -> None:
    teacher = build_teacher("timm", model_name="test_vit", img_size=(32, 64))

    own = teacher.feature_map(images)
    targets = teacher(images, (2, 2))

    assert own.shape == (2, 64, 2, 4)
    torch.testing.assert_close(targets, own.reshape(2, 64, 2, 2, 2).mean(-1).flatten(2).transpose(1, 2))


def test_bad_names_and_sizes_fail_early() -> None:
    with pytest.raises(KeyError, match="no model"):
        build_teacher("timm", model_name="vit_does_not_exist")
    with pytest.raises(ValueError, match="multiple"):
        build_teacher("timm", model_name="test_vit", img_size=70)
