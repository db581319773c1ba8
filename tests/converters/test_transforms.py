"""nerfstudio / instant-ngp ``transforms.json``: cameras round-trip from OpenGL to psfm's OpenCV, to 1e-5."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from psfm.converters.base import convert
from psfm.converters.options import ConvertOptions, TransformsOptions
from tests.converters.captures import (
    OPENGL_TO_OPENCV,
    RenderedScene,
    assert_cameras_round_trip,
    distort_image,
    mean_abs_difference,
    read_shards,
    rendered,
    save_png,
)

DISTORTION = {"k1": -0.12, "k2": 0.03, "p1": 0.002, "p2": -0.001}


def write_transforms(
    folder: Path,
    scene: RenderedScene,
    per_frame: bool = False,
    angle_only: bool = False,
    extension: bool = True,
    distortion: dict[str, float] | None = None,
    downscale: int = 1,
) -> Path:
    """A capture as ns-process-data / colmap2nerf write it: OpenGL poses, images/ beside the JSON."""
    height, width = scene.images[0].shape[:2]
    intrinsics = scene.intrinsics[0]
    camera = {
        "fl_x": intrinsics[0, 0],
        "fl_y": intrinsics[1, 1],
        "cx": intrinsics[0, 2],
        "cy": intrinsics[1, 2],
        "w": width,
        "h": height,
    }
    capture: dict = {"camera_model": "OPENCV", **(distortion or {})}
    if angle_only:
        capture["camera_angle_x"] = 2 * math.atan(0.5 * width / intrinsics[0, 0])
    elif not per_frame:
        capture.update(camera)
    frames = []
    for index, (image, pose) in enumerate(zip(scene.images, scene.cam_to_world, strict=True)):
        name = f"frame_{index + 1:05d}"
        if distortion:
            image = distort_image(image, intrinsics, np.array([distortion[k] for k in ("k1", "k2", "p1", "p2")]))
        save_png(folder / "images" / f"{name}.png", image)
        if downscale > 1:
            small = Image.fromarray(image).resize((width // downscale, height // downscale), Image.Resampling.BOX)
            save_png(folder / f"images_{downscale}" / f"{name}.png", np.asarray(small))
        frame = {
            "file_path": f"images/{name}{'.png' if extension else ''}",
            "transform_matrix": pose @ OPENGL_TO_OPENCV,
        }
        frames.append({**frame, **(camera if per_frame else {})})
    # the camera list order is not the file order in the wild; the converter sorts by file name
    capture["frames"] = frames[::-1]
    (folder / "transforms.json").write_text(json.dumps(capture, default=lambda array: array.tolist()))
    return folder


def png(**transforms) -> ConvertOptions:
    """Lossless shards, so converted pixels can be compared with the rendered ones exactly."""
    return ConvertOptions(image_format="png", transforms=TransformsOptions(**transforms))


def test_capture_intrinsics_and_opengl_poses_round_trip(tmp_path):
    scene = rendered(0)
    write_transforms(tmp_path / "capture", scene)
    report = convert("transforms", tmp_path / "capture", tmp_path / "out", png(), progress=False)
    assert report.written == 1 and report.views == 4 and not report.skipped_frames
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert meta.scene_id == "capture" and meta.pose_source == "colmap" and meta.metric_scale == "none"
    assert meta.image_size == (48, 64)
    assert_cameras_round_trip(meta, scene)
    for converted, original in zip(images, scene.images, strict=True):
        np.testing.assert_array_equal(converted, original)  # same pixels, in the same order


def test_per_frame_intrinsics_portrait_and_paths_without_extension(tmp_path):
    scene = rendered(1, height=64, width=48)
    write_transforms(tmp_path / "portrait", scene, per_frame=True, extension=False)
    convert("transforms", tmp_path / "portrait", tmp_path / "out", png(), progress=False)
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert meta.image_size == (64, 48)
    assert_cameras_round_trip(meta, scene)
    np.testing.assert_array_equal(images[2], scene.images[2])


def test_camera_angle_x_alone_gives_the_centred_pinhole(tmp_path):
    scene = rendered(0)
    write_transforms(tmp_path / "blender", scene, angle_only=True)
    convert("transforms", tmp_path / "blender", tmp_path / "out", png(), progress=False)
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    assert_cameras_round_trip(meta, scene)


def test_downscaled_image_folder_scales_the_intrinsics(tmp_path):
    scene = rendered(0)
    write_transforms(tmp_path / "capture", scene, downscale=2)
    convert("transforms", tmp_path / "capture", tmp_path / "out", png(downscale_factor=2), progress=False)
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert meta.image_size == (24, 32) and images[0].shape == (24, 32, 3)
    half = np.diag([0.5, 0.5, 1.0])
    halved = replace(scene, intrinsics=[half @ k for k in scene.intrinsics])
    assert_cameras_round_trip(meta, halved)


def test_lens_distortion_is_undistorted_to_the_pinhole_image(tmp_path):
    # smoothed first: at 48x64 the floor texture is at pixel scale, and two bilinear resamplings
    # would blur it more than the distortion moves it
    smooth = [np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(2))) for image in rendered(0).images]
    scene = replace(rendered(0), images=smooth)
    write_transforms(tmp_path / "capture", scene, distortion=DISTORTION)
    report = convert("transforms", tmp_path / "capture", tmp_path / "out", png(), progress=False)
    assert report.written == 1
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert_cameras_round_trip(meta, scene)  # the pinhole intrinsics are kept
    distorted = distort_image(scene.images[0], scene.intrinsics[0], np.array(list(DISTORTION.values())))
    restored_error = mean_abs_difference(images[0], scene.images[0], border=4)
    assert restored_error < 0.25 * mean_abs_difference(distorted, scene.images[0], border=4)


def test_distortion_refuse_skips_the_frames_naming_the_file(tmp_path):
    write_transforms(tmp_path / "capture", rendered(0), distortion=DISTORTION)
    options = ConvertOptions(distortion="refuse")
    report = convert("transforms", tmp_path / "capture", tmp_path / "out", options, progress=False)
    assert report.written == 0 and report.skipped_frames == {"distorted_camera": 4}
    assert report.skipped_scenes == {"no_usable_frames": 1}
    assert "transforms.json frames[" in report.problems[0] and "distortion=refuse" in report.problems[0]


def test_a_missing_image_and_a_nan_pose_skip_their_frames_only(tmp_path):
    scene = rendered(0)
    folder = write_transforms(tmp_path / "capture", scene)
    (folder / "images" / "frame_00002.png").unlink()
    record = json.loads((folder / "transforms.json").read_text())
    nan_frame = next(frame for frame in record["frames"] if frame["file_path"].endswith("frame_00004.png"))
    nan_frame["transform_matrix"][0][3] = float("nan")
    (folder / "transforms.json").write_text(json.dumps(record))
    report = convert("transforms", folder, tmp_path / "out", png(), progress=False)
    assert report.written == 1 and report.views == 2
    assert report.skipped_frames == {"missing_image": 1, "non_finite_pose": 1}
    assert any("images/frame_00002.png not found" in problem for problem in report.problems)
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    assert_cameras_round_trip(meta, scene, views=[0, 2])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "invalid_metadata"),
        ('{"camera_model": "OPENCV_FISHEYE", "frames": []}', "unsupported_camera_model"),
    ],
)
def test_an_unreadable_or_fisheye_capture_is_one_skipped_scene(tmp_path, content, reason):
    write_transforms(tmp_path / "root" / "good", rendered(0))
    (tmp_path / "root" / "bad").mkdir()
    (tmp_path / "root" / "bad" / "transforms.json").write_text(content)
    report = convert("transforms", tmp_path / "root", tmp_path / "out", progress=False)
    assert report.scenes_found == 2 and report.written == 1 and report.skipped_scenes == {reason: 1}
    assert str(tmp_path / "root" / "bad" / "transforms.json") in report.problems[0]
    assert list(read_shards(tmp_path / "out")) == ["good"]
