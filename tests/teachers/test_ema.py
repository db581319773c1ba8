"""The EMA teacher: cosine momentum schedule, the update formula on every parameter, buffers, wrappers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from psfm.encoders.backbones import Backbone, PatchTokens
from psfm.teachers import build_teacher
from psfm.teachers.base import resize_to_grid
from psfm.teachers.common import tokens_to_map
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


class CoarseBackbone(ConvBackbone):
    """Declares patch_size 8 but strides 16: its tokens lie on a grid half the size the teacher asks for."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, self.dim, 16, 16)


class TensorBackbone(ConvBackbone):
    """Returns the bare token tensor [M, h * w, D], no PatchTokens (no .tokens, no .grid)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(images).tokens


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
    # the class has its own defaults, which the registered factory does not use: keep them the same
    # (mutation testing: EMATeacher's total_steps=10001 survived)
    direct = EMATeacher(student)
    assert (direct.momentum, direct.final_momentum, direct.total_steps) == (0.996, 1.0, 10_000)


@pytest.mark.parametrize("momenta", [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
def test_momenta_at_the_ends_of_0_1_are_accepted(student: Backbone, momenta) -> None:
    # both ends of [0, 1] are valid (mutation testing: "0.0 <=" -> "0.0 <" survived)
    assert EMATeacher(student, *momenta).momentum_at(0) == momenta[0]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"momentum": 1.01}, ValueError, r"momenta must lie in \[0, 1\], got 1.01 and 1.0"),
        ({"momentum": -0.01}, ValueError, r"got -0.01 and 1.0"),
        ({"final_momentum": 1.5}, ValueError, r"got 0.996 and 1.5"),
        ({"final_momentum": -0.5}, ValueError, r"got 0.996 and -0.5"),
        ({"total_steps": -1}, ValueError, r"total_steps must be >= 0, got -1"),
    ],
)
def test_bad_settings_are_refused_naming_them(student: Backbone, arguments, error, message) -> None:
    # each bound alone (mutation testing: "and" -> "or" between the momenta, "<= 1.0" -> "<= 2.0" and the
    # messages replaced by None survived: no test built a teacher with bad settings)
    with pytest.raises(error, match=message):
        EMATeacher(student, **arguments)


def test_a_student_without_dim_or_patch_size_is_refused_naming_its_type() -> None:
    with pytest.raises(TypeError, match=r"needs a student backbone with .dim, got <class 'torch.nn.*Linear'>"):
        EMATeacher(nn.Linear(2, 2))


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


def _extra_parameter(student: ConvBackbone) -> None:
    student.extra = nn.Parameter(torch.zeros(1))


def _no_affine_norm(student: ConvBackbone) -> None:
    student.norm = nn.BatchNorm2d(student.dim, affine=False)  # same buffers, no norm.weight / norm.bias


def _smaller_kernel(student: ConvBackbone) -> None:
    student.embed = nn.Conv2d(3, student.dim, 4, student.patch_size)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_extra_parameter, r"missing \[\], unexpected \['extra'\], shape mismatch \[\]"),
        (_no_affine_norm, r"missing \['norm.bias', 'norm.weight'\], unexpected \[\], shape mismatch \[\]"),
        (_smaller_kernel, r"missing \[\], unexpected \[\], shape mismatch \['embed.weight'\]"),
    ],
)
def test_each_kind_of_difference_alone_is_an_error_naming_it(change, named) -> None:
    # the test above changes everything at once; each kind alone must also stop the update, never be skipped
    # (mutation testing: "or" -> "and" between the three checks survived)
    student = ConvBackbone()
    teacher = EMATeacher(student)
    change(student)

    with pytest.raises(ValueError, match=named):
        teacher.update(student, step=0)


def test_schedules_of_zero_and_one_step(student: Backbone) -> None:
    # total_steps=0 (allowed) is the final momentum from the start, without dividing by zero; one step still
    # starts at momentum (mutation testing: "> 0" -> ">= 0" / "> 1" and the 1.0 fallback -> 2.0 survived)
    empty = build_teacher("ema", student, momentum=0.9, final_momentum=0.99, total_steps=0)
    assert empty.momentum_at(0) == empty.momentum_at(7) == 0.99
    one = build_teacher("ema", student, momentum=0.9, final_momentum=0.99, total_steps=1)
    assert (one.momentum_at(0), one.momentum_at(1)) == (pytest.approx(0.9), 0.99)


def test_non_square_grids_are_read_at_the_students_own_resolution() -> None:
    # a grid (h, w) feeds the copy h * patch by w * patch pixels; with the grid the copy reports it needs no
    # resize, so the teacher answers exactly the (identical) student's tokens (mutation testing: the grid's
    # height taken from its width survived, because every test used square grids)
    student = ConvBackbone()
    teacher = EMATeacher(student).eval()
    student.eval()
    images = torch.rand(2, 3, 16, 32, generator=torch.Generator().manual_seed(2))

    torch.testing.assert_close(teacher(images, (2, 4)), student(images).tokens, rtol=0, atol=0)


def test_a_copy_on_its_own_grid_is_resized_to_the_requested_one() -> None:
    # a backbone whose tokens come out coarser than its declared patch size: the teacher maps them onto the
    # requested grid (mutation testing: the whole resize branch survived; no test's copy had another grid)
    student = CoarseBackbone()
    teacher = EMATeacher(student).eval()
    student.eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))

    own = student(images)
    assert own.grid == (2, 2)
    expected = resize_to_grid(tokens_to_map(own.tokens, (2, 2)), (4, 4))
    torch.testing.assert_close(teacher(images, (4, 4)), expected, rtol=0, atol=0)


def test_a_copy_returning_bare_tokens_is_read_as_they_are() -> None:
    # forward may return the token tensor itself, without .tokens or .grid (mutation testing: the getattr
    # defaults -> None or dropped survived)
    student = TensorBackbone()
    teacher = EMATeacher(student).eval()
    student.eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))

    torch.testing.assert_close(teacher(images, (4, 4)), student(images), rtol=0, atol=0)


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
