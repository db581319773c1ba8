"""Every registered teacher keeps the contract: [M, h * w, dim] finite float targets, frozen, no gradients."""

from __future__ import annotations

import pytest
import torch

from psfm.encoders.backbones import Backbone
from psfm.teachers import TEACHERS, Teacher, build_teacher
from tests.conftest import make_batch

EXPECTED_TEACHERS = {"pixels", "depth", "ema", "timm", "efficientnet_lite0", "module"}
# Teachers that read an annotation rather than images: only their batch contract applies.
ANNOTATION_TEACHERS = {"depth"}
IMAGE_TEACHERS = [name for name in TEACHERS.names() if name not in ANNOTATION_TEACHERS]

# Smallest useful configuration of each teacher; "{factories}" is the tmp_path factory module.
BUILD_KWARGS: dict[str, dict] = {
    "pixels": {},
    "ema": {},
    "timm": {"model_name": "test_resnet", "img_size": 64},
    "efficientnet_lite0": {"img_size": 64},
    "module": {"factory": "{factories}:build_map"},
}


def build(name: str, student: Backbone, factories: str) -> Teacher:
    kwargs = {
        key: value.format(factories=factories) if isinstance(value, str) else value
        for key, value in BUILD_KWARGS.get(name, {}).items()
    }
    return build_teacher(name, student, **kwargs)


def test_every_teacher_is_registered() -> None:
    assert set(TEACHERS.names()) >= EXPECTED_TEACHERS


@pytest.mark.parametrize("name", IMAGE_TEACHERS)
@pytest.mark.parametrize("image_size", [(64, 64), (32, 48)])
def test_teacher_output_contract(name: str, image_size: tuple[int, int], student: Backbone, factories: str) -> None:
    teacher = build(name, student, factories)
    grid = (image_size[0] // student.patch_size, image_size[1] // student.patch_size)
    images = torch.rand(3, 3, *image_size, generator=torch.Generator().manual_seed(2))

    targets = teacher(images, grid)

    assert isinstance(teacher, Teacher)
    assert isinstance(teacher.dim, int) and teacher.dim > 0
    assert targets.shape == (3, grid[0] * grid[1], teacher.dim)
    assert targets.dtype == torch.float32
    assert torch.isfinite(targets).all()
    assert targets.std() > 0, "constant targets teach nothing"


@pytest.mark.parametrize("name", IMAGE_TEACHERS)
def test_teacher_is_frozen_and_gives_no_gradient(name: str, student: Backbone, images: torch.Tensor, factories: str):
    teacher = build(name, student, factories)
    teacher.train()  # what a surrounding LightningModule does every epoch

    assert not [n for n, parameter in teacher.named_parameters() if parameter.requires_grad]
    assert not any(module.training for module in teacher.modules()), "BatchNorm/dropout must stay in eval mode"
    with torch.enable_grad():
        targets = teacher(images.clone().requires_grad_(True), (4, 4))
    assert not targets.requires_grad and targets.grad_fn is None


@pytest.mark.parametrize("name", IMAGE_TEACHERS)
def test_teacher_is_deterministic_and_sees_the_image(
    name: str, student: Backbone, images: torch.Tensor, factories: str
) -> None:
    teacher = build(name, student, factories)
    first = teacher(images, (4, 4))
    teacher.update(student, step=0)  # the hook every teacher accepts; EMA with an unchanged student stays put
    again = teacher(images, (4, 4))

    torch.testing.assert_close(first, again)
    assert not torch.allclose(first[0], first[1]), "two different images gave the same targets"


@pytest.mark.parametrize("name", TEACHERS.names())
@pytest.mark.parametrize("image_size", [(32, 32), (32, 48)])
def test_batch_targets_contract(name: str, image_size: tuple[int, int], student: Backbone, factories: str) -> None:
    """What the objective calls: every teacher, image or annotation, maps a batch to [B, V, h * w, Dt]."""
    teacher = build(name, student, factories)
    batch = make_batch(batch_size=2, num_views=3, size=32)
    batch.images = torch.rand(2, 3, 3, *image_size, generator=torch.Generator().manual_seed(3))
    batch.depth = 0.5 + 4 * torch.rand(2, 3, 1, *image_size, generator=torch.Generator().manual_seed(4))
    grid = (image_size[0] // student.patch_size, image_size[1] // student.patch_size)
    teacher.train()  # what a surrounding LightningModule does every epoch

    targets = teacher.batch_targets(batch, grid)

    assert targets.shape == (2, 3, grid[0] * grid[1], teacher.dim)
    assert targets.dtype == torch.float32 and torch.isfinite(targets).all()
    assert not targets.requires_grad
    assert not [n for n, parameter in teacher.named_parameters() if parameter.requires_grad]
    assert not any(module.training for module in teacher.modules())
    assert not torch.allclose(targets[0, 0], targets[1, 0]), "two different views gave the same targets"
