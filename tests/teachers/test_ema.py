"""The EMA teacher: cosine momentum schedule, the update formula on every parameter, buffers, wrappers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from psfm.encoders.backbones import Backbone, PatchTokens
from psfm.teachers import build_teacher
from psfm.teachers.ema import EMATeacher, unwrap_student


class ConvBackbone(nn.Module):
    """A tiny student with BatchNorm, so it has buffers that change during training."""

    dim = 6
    patch_size = 8

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, self.dim, self.patch_size, self.patch_size)
        self.norm = nn.BatchNorm2d(self.dim)

    def forward(self, images: torch.Tensor) -> PatchTokens:
        feature_map = self.norm(self.embed(images))
        return PatchTokens(feature_map.flatten(2).transpose(1, 2), tuple(feature_map.shape[-2:]))


class CompiledLike(nn.Module):
    """Stands in for torch.compile's OptimizedModule, which keeps the real module as ``_orig_mod``."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self._orig_mod = module


@torch.no_grad()
def perturb(module: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        parameter.add_(torch.randn(parameter.shape, generator=generator))


def test_momentum_schedule_endpoints_and_shape(student: Backbone) -> None:
    teacher = build_teacher("ema", student, momentum=0.99, final_momentum=1.0, total_steps=1000)

    assert teacher.momentum_at(0) == pytest.approx(0.99, abs=1e-12)
    assert teacher.momentum_at(500) == pytest.approx(0.995, abs=1e-12)
    assert teacher.momentum_at(1000) == 1.0
    assert teacher.momentum_at(5000) == 1.0  # clamped after the schedule
    assert teacher.momentum_at(250) == pytest.approx(1.0 - 0.01 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-12)
    values = [teacher.momentum_at(step) for step in range(0, 1001, 50)]
    assert values == sorted(values)


def test_defaults(student: Backbone) -> None:
    teacher = build_teacher("ema", student)

    assert (teacher.momentum_at(0), teacher.momentum_at(10_000)) == (pytest.approx(0.996), 1.0)
    assert teacher.dim == student.dim and teacher.patch_size == student.patch_size


def test_starts_as_an_independent_copy(student: Backbone, images: torch.Tensor) -> None:
    teacher = build_teacher("ema", student)

    torch.testing.assert_close(teacher(images, (4, 4)), student(images).tokens, rtol=0, atol=0)
    perturb(student)
    assert not torch.allclose(teacher(images, (4, 4)), student(images).tokens, atol=1e-3)
    assert all(parameter.requires_grad for parameter in student.parameters()), "the student must stay trainable"


def test_one_update_follows_the_formula_on_every_parameter(student: Backbone) -> None:
    teacher = build_teacher("ema", student, momentum=0.9, final_momentum=1.0, total_steps=100)
    perturb(student)
    before = {name: value.clone() for name, value in teacher.model.named_parameters()}
    step = 30
    momentum = teacher.momentum_at(step)

    teacher.update(student, step)

    student_parameters = dict(student.named_parameters())
    assert 0.9 < momentum < 1.0 and len(before) == len(student_parameters) > 10
    for name, value in teacher.model.named_parameters():
        expected = momentum * before[name] + (1 - momentum) * student_parameters[name]
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6, msg=name)
        assert not value.requires_grad


def test_momentum_one_is_a_no_op(student: Backbone) -> None:
    teacher = build_teacher("ema", student, momentum=1.0, final_momentum=1.0)
    before = {name: value.clone() for name, value in teacher.model.state_dict().items()}
    perturb(student)

    teacher.update(student, step=5)

    for name, value in teacher.model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_buffers_are_copied_through_a_wrapper(images: torch.Tensor) -> None:
    student = ConvBackbone()
    teacher = build_teacher("ema", student, momentum=0.5, final_momentum=0.5)
    student.train()
    student(torch.rand(4, 3, 16, 16))  # BatchNorm updates its running statistics
    perturb(student)
    assert not torch.equal(student.norm.running_mean, teacher.model.norm.running_mean)
    weight_before = teacher.model.embed.weight.clone()

    teacher.update(CompiledLike(student), step=0)

    for name, buffer in student.named_buffers():
        assert torch.equal(dict(teacher.model.named_buffers())[name], buffer), name
    torch.testing.assert_close(teacher.model.embed.weight, 0.5 * weight_before + 0.5 * student.embed.weight)
    assert teacher(images, (8, 8)).shape == (2, 64, 6)
    assert not teacher.model.training, "the copy stays in eval mode"


def test_unwrap_student_sees_through_compile_and_data_parallel() -> None:
    student = ConvBackbone()

    assert unwrap_student(CompiledLike(nn.DataParallel(student))) is student
    assert unwrap_student(student) is student


def test_a_different_student_is_an_error(student: Backbone) -> None:
    teacher = EMATeacher(student)

    with pytest.raises(ValueError, match="no longer matches"):
        teacher.update(ConvBackbone(), step=0)


def test_needs_a_student() -> None:
    with pytest.raises(ValueError, match="student"):
        build_teacher("ema")


def test_update_from_an_fsdp2_sharded_student(tmp_path, student: Backbone) -> None:
    """Lightning's ModelParallelStrategy shards the student after the teacher copied it (a 1-rank gloo group here)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if dist.is_initialized():
        pytest.skip("a process group already exists in this test process")
    teacher = build_teacher("ema", student, momentum=0.5, final_momentum=0.5)
    before = {name: value.clone() for name, value in teacher.model.named_parameters()}
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        perturb(student)
        fully_shard(student, mesh=init_device_mesh("cpu", (1,)))
        assert type(next(student.parameters())).__name__ == "DTensor"
        teacher.update(student, step=0)
        whole = {name: value.full_tensor() for name, value in student.named_parameters()}
    finally:
        dist.destroy_process_group()

    for name, value in teacher.model.named_parameters():
        torch.testing.assert_close(value, 0.5 * before[name] + 0.5 * whole[name], msg=name)
