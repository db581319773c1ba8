"""Where lifting gets metric depth: the capture's own depth, or a user-supplied monocular model.

A depth model is anything with a ``name`` and ``__call__(rgb [H, W, 3] uint8, intrinsics [3, 3]) ->
depth [H, W] metres``; its name is recorded in the facts' ``metric_scale`` as ``depth_model:<name>``,
so a question's metres can always be traced to their source. Nothing rescales depth afterwards.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np


class DepthModel(Protocol):
    """A local metric depth estimator (e.g. a wrapped Depth-Anything-Metric or UniDepth checkpoint)."""

    name: str

    def __call__(self, rgb: np.ndarray, intrinsics: np.ndarray) -> np.ndarray: ...


def depth_scale_tag(metric_scale: str, model: DepthModel | None) -> str:
    """The ``metric_scale`` of lifted facts: the model's tag, else the capture's own source."""
    if model is not None:
        return f"depth_model:{model.name}"
    return "sensor_depth" if metric_scale == "none" else metric_scale


def load_depth_model(spec: str) -> DepthModel:
    """Build a depth model from ``"package.module:factory"`` (called without arguments).

    The factory runs the user's own model code (a local checkpoint); psfm never downloads one.
    """
    module_name, _, factory = spec.partition(":")
    if not module_name or not factory:
        raise ValueError(f"depth model {spec!r} must look like 'package.module:factory'")
    model = getattr(importlib.import_module(module_name), factory)()
    if not isinstance(getattr(model, "name", None), str) or not callable(model):
        raise ValueError(f"depth model {spec!r} must be callable and have a string 'name'")
    return model
