"""ScanNet-style folders: ``color/``, ``depth/`` (16-bit PNG, millimetres), ``pose/`` and ``intrinsic/``.

This is the layout ScanNet's SensReader exports (and many RGB-D captures imitate): frame ``<n>`` is
``color/<n>.jpg``, ``depth/<n>.png`` and ``pose/<n>.txt`` (a 4x4 OpenCV camera-to-world matrix, metres),
with ``intrinsic/intrinsic_color.txt`` and ``intrinsic_depth.txt`` (4x4, the upper-left 3x3 is K). Poses
that hold ``-inf``/NaN (tracking lost) are skipped and counted. Depth at another resolution than colour is
resampled into the colour camera, nearest neighbour, through ``K_depth K_color^-1`` (a nearest resize when
one K is the other scaled), so every view's depth is at its colour size.

Instance masks come from ScanNet's filtered 2D projections of its 3D annotation, unzipped beside the frames
(``<scan>_2d-instance-filt.zip`` -> ``instance-filt/<n>.png``, 8-bit, 0 = unannotated), with their labels
from the scan's ``<scan>.aggregation.json``: a pixel value is a ``segGroups`` entry's ``objectId + 1``, the
1-based numbering ScanNet's benchmark scripts give instances. Walls, floor and ceiling are annotated there
like furniture; psfm stores them as 0 (room structure, ``scannet.structure_labels``), as ScanNet's own
benchmark gives them no instance. Masks registered to colour at another resolution are resized nearest.
The labels become ``objects`` (``instance_id``, ``category``; no box: ScanNet's boxes come from its mesh).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from psfm.converters.base import Capture, natural_key
from psfm.converters.frames import CaptureError, Frame
from psfm.converters.options import ConvertOptions

LOOKS_FOR = "a folder with color/, pose/ and intrinsic/ (depth/, instance-filt/ optional), or subfolders of such"
COLOR_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_scene(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in ("color", "pose", "intrinsic"))


def find_scenes(root: Path) -> list[Path]:
    if is_scene(root):
        return [root]
    children = [path for path in root.iterdir() if path.is_dir()] if root.is_dir() else []
    return sorted((path for path in children if is_scene(path)), key=lambda p: natural_key(p.name))


def read_matrix(path: Path, reason: str) -> np.ndarray:
    """A 4x4 text matrix; NaN and inf are kept (the pose check names them)."""
    if not path.is_file():
        raise CaptureError(reason, f"{path}: not found")
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise CaptureError(reason, f"{path}: not a matrix of numbers ({error})") from None
    if matrix.shape != (4, 4):
        raise CaptureError(reason, f"{path}: holds a {matrix.shape[0]}x{matrix.shape[1]} matrix, expected 4x4")
    return matrix


def read_aggregation(path: Path) -> dict[int, str]:
    """Mask id (``objectId + 1``) -> label of a ScanNet ``aggregation.json``.

    Raises:
        CaptureError: ``invalid_metadata`` naming the file: missing, not JSON, or a group without an integer
            ``objectId`` and a string ``label``.
    """
    if not path.is_file():
        raise CaptureError(
            "invalid_metadata", f"{path}: not found (the labels of instance-filt/; or set scannet.instances=false)"
        )
    try:
        groups = json.loads(path.read_text("utf-8"))["segGroups"]
        labels = {}
        for group in groups:
            object_id, label = group["objectId"], group["label"]
            if not isinstance(object_id, int) or isinstance(object_id, bool) or not isinstance(label, str):
                raise TypeError(f"segGroups entry {str(group)[:80]} has no integer objectId and string label")
            labels[object_id + 1] = label.strip()
    except (ValueError, KeyError, TypeError) as error:
        raise CaptureError("invalid_metadata", f"{path}: not a ScanNet aggregation ({error})") from None
    return labels


def read_scene(scene: Path, options: ConvertOptions) -> Capture:
    color_intrinsics = read_matrix(scene / "intrinsic" / "intrinsic_color.txt", "invalid_metadata")[:3, :3]
    with_depth = options.scannet.depth and (scene / "depth").is_dir()
    depth_intrinsics = None
    if with_depth:
        depth_intrinsics = read_matrix(scene / "intrinsic" / "intrinsic_depth.txt", "invalid_metadata")[:3, :3]
    with_instances = options.scannet.instances and (scene / "instance-filt").is_dir()
    objects, background = None, frozenset()
    if with_instances:
        labels = read_aggregation(scene / f"{scene.name}.aggregation.json")
        structure = {label.lower() for label in options.scannet.structure_labels}
        background = frozenset(mask_id for mask_id, label in labels.items() if label.lower() in structure)
        objects = [
            {"instance_id": mask_id, "category": label}
            for mask_id, label in sorted(labels.items())
            if mask_id not in background
        ]
    images = [path for path in (scene / "color").iterdir() if path.suffix.lower() in COLOR_SUFFIXES]
    frames, skipped = [], []
    for image in sorted(images, key=lambda path: natural_key(path.name)):
        pose_path = scene / "pose" / f"{image.stem}.txt"
        try:
            pose = read_matrix(pose_path, "invalid_pose")
        except CaptureError as error:
            skipped.append(error)
            continue
        depth = scene / "depth" / f"{image.stem}.png" if with_depth else None
        mask = scene / "instance-filt" / f"{image.stem}.png" if with_instances else None
        frames.append(
            Frame(
                image,
                str(pose_path),
                color_intrinsics,
                pose,
                depth=depth,
                depth_intrinsics=depth_intrinsics,
                mask=mask,
                mask_background=background,
            )
        )
    source = {"layout": "scannet", "frames_listed": len(images)}
    if with_instances:
        source |= {"instances": "instance-filt", "aggregation": f"{scene.name}.aggregation.json"}
    return Capture(
        frames,
        pose_source="gt",  # sensor tracking (BundleFusion for ScanNet), metric through the depth sensor
        metric_scale="sensor_depth",
        source=source,
        skipped=skipped,
        objects=objects,
    )
