"""The ``ema`` teacher: a momentum (exponential moving average) copy of the student backbone.

Self-distillation without any pretrained weights (BYOL, DINO, I-JEPA, data2vec): the targets are
the student's own features, smoothed over training time, so they improve as the student does while
changing slowly enough to stay a stable target. The momentum follows DINO's cosine schedule from
``momentum`` towards ``final_momentum`` (1.0 freezes the teacher at the end of the schedule).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from psfm.teachers.base import register_teacher, resize_to_grid
from psfm.teachers.common import FrozenTeacher, resize_images, tokens_to_map


def unwrap_student(student: nn.Module) -> nn.Module:
    """The plain module inside torch.compile (``_orig_mod``) and (Distributed)DataParallel (``module``) wrappers."""
    while True:
        if isinstance(getattr(student, "_orig_mod", None), nn.Module):
            student = student._orig_mod
        elif isinstance(student, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            student = student.module
        else:
            return student


def gather_full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of an FSDP2-sharded student parameter (a DTensor, all-gathered); plain tensors as they are.

    The teacher is copied before the student is sharded, so it holds whole tensors; every rank
    calls ``update`` and gathers, which keeps the copies identical across ranks.
    """
    full_tensor = getattr(tensor, "full_tensor", None)
    return full_tensor() if callable(full_tensor) else tensor


def _matching_tensors(
    teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor], kind: str
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Tensors of both modules paired by name; any name or shape difference is an error, never a skip."""
    missing = sorted(set(teacher) - set(student))
    unexpected = sorted(set(student) - set(teacher))
    mismatched = [name for name in teacher if name in student and teacher[name].shape != student[name].shape]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"the student no longer matches its EMA copy ({kind}s): missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {mismatched[:5]}"
        )
    names = list(teacher)
    return [teacher[name] for name in names], [student[name] for name in names]


class EMATeacher(FrozenTeacher):
    """Momentum copy of a student backbone; its patch tokens are the targets.

    Args:
        student: the backbone to copy (``dim``, ``patch_size``, forward -> ``PatchTokens``).
        momentum: m at step 0.
        final_momentum: m at ``total_steps`` and after.
        total_steps: length of the cosine schedule in optimizer steps.
    """

    def __init__(
        self, student: nn.Module, momentum: float = 0.996, final_momentum: float = 1.0, total_steps: int = 10000
    ):
        super().__init__()
        if not (0.0 <= momentum <= 1.0 and 0.0 <= final_momentum <= 1.0):
            raise ValueError(f"momenta must lie in [0, 1], got {momentum} and {final_momentum}")
        if total_steps < 0:
            raise ValueError(f"total_steps must be >= 0, got {total_steps}")
        student = unwrap_student(student)
        for attribute in ("dim", "patch_size"):
            if not hasattr(student, attribute):
                raise TypeError(f"the ema teacher needs a student backbone with .{attribute}, got {type(student)}")
        self.dim = int(student.dim)
        self.patch_size = int(student.patch_size)
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.total_steps = total_steps
        self.model = copy.deepcopy(student)
        self.freeze()

    def momentum_at(self, step: int) -> float:
        """Cosine schedule: ``momentum`` at step 0, ``final_momentum`` from ``total_steps`` on."""
        progress = min(max(step, 0), self.total_steps) / self.total_steps if self.total_steps > 0 else 1.0
        return self.final_momentum - (self.final_momentum - self.momentum) * (1.0 + math.cos(math.pi * progress)) / 2

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> None:
        """teacher = m · teacher + (1 − m) · student for every parameter; buffers are copied from the student.

        Buffers (BatchNorm running statistics, step counters) are not learnt, so averaging them has
        no meaning; the copy keeps the teacher's normalization consistent with its weights. With
        m = 1 nothing changes at all.
        """
        momentum = self.momentum_at(step)
        if momentum == 1.0:
            return
        student = unwrap_student(student)
        teacher_params, student_params = _matching_tensors(
            dict(self.model.named_parameters()), dict(student.named_parameters()), "parameter"
        )
        if teacher_params:
            student_params = [
                gather_full(s.detach()).to(t.device, t.dtype)
                for t, s in zip(teacher_params, student_params, strict=True)
            ]
            torch._foreach_mul_(teacher_params, momentum)
            torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)
        teacher_buffers, student_buffers = _matching_tensors(
            dict(self.model.named_buffers()), dict(student.named_buffers()), "buffer"
        )
        for teacher_buffer, student_buffer in zip(teacher_buffers, student_buffers, strict=True):
            teacher_buffer.copy_(gather_full(student_buffer))

    def features(self, images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """images: [M, 3, H, W] in [0, 1], resized to ``grid * patch_size`` -> [M, h * w, D] patch tokens."""
        images = resize_images(images, (grid[0] * self.patch_size, grid[1] * self.patch_size))
        output = self.model(images)
        tokens = getattr(output, "tokens", output)
        own_grid = tuple(getattr(output, "grid", grid))
        if own_grid != tuple(grid):
            return resize_to_grid(tokens_to_map(tokens, own_grid), grid)
        return tokens


@register_teacher("ema")
def ema_teacher(
    student: nn.Module | None = None, momentum: float = 0.996, final_momentum: float = 1.0, total_steps: int = 10000
) -> EMATeacher:
    """Momentum copy of ``student``; call ``teacher.update(student, step)`` after every optimizer step."""
    if student is None:
        raise ValueError("the ema teacher copies the student: build it with student=<backbone>")
    return EMATeacher(student, momentum, final_momentum, total_steps)
