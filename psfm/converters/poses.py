"""Poses for unposed captures (image folders, videos) from the user's own model: ``pose_model=package.module:factory``.

The factory is called once, without arguments, and returns a pose model: anything callable as

    model(images: list of V [H, W, 3] uint8, intrinsics: list of V [3, 3]) -> PosePrediction | mapping

with the scene's views as they will be written (after ``max_side`` and fitting to one size) and their assumed
intrinsics, in pixels of those images. It answers V OpenCV camera-to-world poses, optionally refined
intrinsics, and whether its translations are in metres (``metric_scale``, default false); a plain dict with
those keys works too, so a model module needs nothing from psfm. The scene is written with
``pose_source: predicted``, ``metric_scale: predicted`` or ``none``, and ``source.pose_model`` naming the spec.

As with ``psfm qa depth_model=``, psfm runs local code and never downloads a checkpoint. A spec that cannot
be loaded is a usage error naming it; a model that raises on a scene skips that scene (``pose_model_failed``),
and an answer of the wrong shape or one the shard format refuses (a non-rigid pose, NaN, an impossible
camera; ``psfm.datamodules.format``) skips it as ``bad_pose_prediction`` with the format's message. The model
is loaded once per process, before worker processes fork, so a model on a GPU needs ``workers=1``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from psfm.converters.frames import CaptureError, View
from psfm.errors import UsageError


@dataclass(frozen=True)
class PosePrediction:
    """What a pose model says about a scene's V views."""

    cam_to_world: Any  # [V, 4, 4] OpenCV camera-to-world (x right, y down, z forward)
    intrinsics: Any = None  # [V, 3, 3] refined, in pixels of the images given; None keeps the assumed ones
    metric_scale: bool = False  # translations in metres


PoseModel = Callable[[list[np.ndarray], list[np.ndarray]], "PosePrediction | Mapping[str, Any]"]


@functools.cache
def load_pose_model(spec: str) -> PoseModel:
    """The pose model ``"package.module:factory"`` builds (cached: one per process, whatever the scene count).

    Raises:
        UsageError: the spec is malformed, its module cannot be imported, it names no callable factory, or the
            factory does not return a callable.
    """
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise UsageError(f"pose_model={spec!r} must be sfm or look like 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"pose_model={spec!r}: cannot import {module_name} ({error}); is it on PYTHONPATH?") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UsageError(f"pose_model={spec!r}: {module_name} has no callable {factory_name!r}")
    model = factory()
    if not callable(model):
        raise UsageError(f"pose_model={spec!r}: {factory_name}() returned {model!r:.60}, not a callable")
    return model


def _prediction(answer: Any, views: int, where: str) -> PosePrediction:
    """The model's answer as a checked ``PosePrediction`` (shapes and types; the format checks the geometry)."""
    if isinstance(answer, Mapping):
        known = {item.name for item in fields(PosePrediction)}
        if unknown := sorted(set(answer) - known):
            message = f"{where} answered unknown keys {unknown}; it may use {sorted(known)}"
            raise CaptureError("bad_pose_prediction", message)
        if "cam_to_world" not in answer:
            raise CaptureError("bad_pose_prediction", f"{where} answered no 'cam_to_world'")
        answer = PosePrediction(**answer)
    if not isinstance(answer, PosePrediction):
        raise CaptureError("bad_pose_prediction", f"{where} answered a {type(answer).__name__}, not a mapping")
    if not isinstance(answer.metric_scale, (bool, np.bool_)):
        raise CaptureError("bad_pose_prediction", f"{where} answered metric_scale={answer.metric_scale!r}, not a bool")
    checked = {}
    for name, shape in (("cam_to_world", (views, 4, 4)), ("intrinsics", (views, 3, 3))):
        value = getattr(answer, name)
        if value is None:
            continue
        try:
            checked[name] = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            checked[name] = np.empty(0)
        if checked[name].shape != shape:
            raise CaptureError(
                "bad_pose_prediction", f"{where} answered {name} of shape {checked[name].shape}, expected {shape}"
            )
    return replace(answer, metric_scale=bool(answer.metric_scale), **checked)


def predict_poses(spec: str, views: list[View], scene: str) -> tuple[list[View], PosePrediction]:
    """``views`` with the model's poses (and its intrinsics when it refines them), and its checked answer.

    Raises:
        CaptureError: ``pose_model_failed`` when the model raises, ``bad_pose_prediction`` for an answer of the
            wrong kind or shape.
    """
    model = load_pose_model(spec)
    where = f"{scene}: pose_model={spec}"
    try:
        answer = model([view.image for view in views], [view.intrinsics for view in views])
    except Exception as error:  # the user's model: any failure is this scene's, the run goes on
        raise CaptureError("pose_model_failed", f"{where} raised {type(error).__name__}: {error}") from None
    prediction = _prediction(answer, len(views), where)
    intrinsics = prediction.intrinsics if prediction.intrinsics is not None else [view.intrinsics for view in views]
    posed = [
        replace(view, cam_to_world=pose, intrinsics=camera)
        for view, pose, camera in zip(views, prediction.cam_to_world, intrinsics, strict=True)
    ]
    return posed, prediction
