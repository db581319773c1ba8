"""Teacher networks whose per-patch features the PSFM decoder learns to predict.

Importing this package registers every teacher: ``pixels``, ``depth``, ``ema``, ``timm``,
``efficientnet_lite0`` and ``module`` (see docs/teachers.md for options and feature dims).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from psfm.teachers import depth, efficientnet, ema, module_teacher, pixels, timm_teacher  # noqa: F401 - registration
from psfm.teachers.base import TEACHERS, Teacher, register_teacher, resize_to_grid


def build_teacher(name: str, student: nn.Module | None = None, **kwargs: Any) -> Teacher:
    """``TEACHERS.build(name, student=student, **kwargs)``; every builder accepts ``student``, most ignore it."""
    return TEACHERS.build(name, student=student, **kwargs)


__all__ = ["TEACHERS", "Teacher", "build_teacher", "register_teacher", "resize_to_grid"]
