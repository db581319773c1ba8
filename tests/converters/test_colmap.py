"""COLMAP sparse models, binary and text: world-to-camera poses inverted, cameras round-trip to 1e-5."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from psfm.converters.base import convert
from psfm.converters.colmap_model import MODEL_IDS, ColmapCamera, cam_to_world, pinhole, read_model
from psfm.converters.frames import CaptureError
from psfm.converters.options import ConvertOptions
from psfm.geometry import project
from tests.converters.captures import (
    RenderedScene,
    assert_cameras_round_trip,
    distort_image,
    mean_abs_difference,
    read_shards,
    rendered,
    save_png,
)

OPENCV_DISTORTION = [-0.1, 0.02, 0.001, -0.002]


def rotation_to_qvec(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (Shepperd's method)."""
    m = rotation
    trace = np.trace(m)
    candidates = [trace, m[0, 0], m[1, 1], m[2, 2]]
    i = int(np.argmax(candidates))
    if i == 0:
        w = np.sqrt(1 + trace) / 2
        q = [w, (m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w)]
    else:
        j, k = (i % 3) + 1, ((i + 1) % 3) + 1
        a, b, c = i - 1, j - 1, k - 1
        s = np.sqrt(1 + m[a, a] - m[b, b] - m[c, c]) * 2
        q = [0.0] * 4
        q[0], q[i] = (m[c, b] - m[b, c]) / s, s / 4
        q[j], q[k] = (m[b, a] + m[a, b]) / s, (m[c, a] + m[a, c]) / s
    q = np.array(q)
    return q if q[0] >= 0 else -q


def camera_params(model: str, intrinsics: np.ndarray) -> list[float]:
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    return {
        "SIMPLE_PINHOLE": [fx, cx, cy],
        "PINHOLE": [fx, fy, cx, cy],
        "OPENCV": [fx, fy, cx, cy, *OPENCV_DISTORTION],
        "OPENCV_FISHEYE": [fx, fy, cx, cy, 0.01, 0.0, 0.0, 0.0],
    }[model]


def write_colmap(folder: Path, scene: RenderedScene, binary: bool = True, model: str = "PINHOLE") -> Path:
    """images/ + sparse/0/{cameras,images,points3D} with one camera per view (COLMAP's documented layouts)."""
    height, width = scene.images[0].shape[:2]
    cameras, images = [], []
    views = zip(scene.images, scene.intrinsics, scene.cam_to_world, strict=True)
    for index, (image, intrinsics, pose) in enumerate(views):
        if model == "OPENCV":
            image = distort_image(image, intrinsics, np.array(OPENCV_DISTORTION))
        save_png(folder / "images" / f"view_{index}.png", image)
        world_to_camera = np.linalg.inv(pose)
        pixels, depth = project(scene.points, intrinsics, pose)
        seen = np.flatnonzero((depth > 0) & np.all((pixels >= 0) & (pixels < [width, height]), axis=1))
        observations = [(*pixels[i], int(i) + 1) for i in seen]
        cameras.append((index + 1, model, width, height, camera_params(model, intrinsics)))
        # listed out of name order on purpose: COLMAP's ids follow registration, not capture order
        images.insert(0, (index + 1, rotation_to_qvec(world_to_camera[:3, :3]), world_to_camera[:3, 3], index + 1,
                          f"view_{index}.png", observations))  # fmt: skip
    sparse = folder / "sparse" / "0"
    sparse.mkdir(parents=True)
    (_write_binary if binary else _write_text)(sparse, cameras, images, scene.points)
    return folder


def _write_text(sparse: Path, cameras, images, points) -> None:
    lines = ["# Camera list with one line of data per camera:"]
    lines += [
        f"{cid} {model} {w} {h} " + " ".join(repr(float(p)) for p in params) for cid, model, w, h, params in cameras
    ]
    (sparse / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list with two lines of data per image:"]
    for image_id, qvec, tvec, camera_id, name, observations in images:
        lines.append(" ".join(map(repr, [image_id, *map(float, qvec), *map(float, tvec), camera_id])) + f" {name}")
        lines.append(" ".join(f"{float(x)!r} {float(y)!r} {pid}" for x, y, pid in observations))  # empty when none
    (sparse / "images.txt").write_text("\n".join(lines) + "\n")
    rows = [f"{i + 1} {x!r} {y!r} {z!r} 255 0 0 0.5 1 0" for i, (x, y, z) in enumerate(points.tolist())]
    (sparse / "points3D.txt").write_text("# 3D point list\n" + "\n".join(rows) + "\n")


def _write_binary(sparse: Path, cameras, images, points) -> None:
    data = struct.pack("<Q", len(cameras))
    for cid, model, w, h, params in cameras:
        data += struct.pack("<iiQQ", cid, MODEL_IDS[model], w, h) + struct.pack(f"<{len(params)}d", *params)
    (sparse / "cameras.bin").write_bytes(data)
    data = struct.pack("<Q", len(images))
    for image_id, qvec, tvec, camera_id, name, observations in images:
        data += struct.pack("<i7di", image_id, *qvec, *tvec, camera_id) + name.encode() + b"\x00"
        data += struct.pack("<Q", len(observations))
        data += b"".join(struct.pack("<ddq", x, y, pid) for x, y, pid in observations)
    (sparse / "images.bin").write_bytes(data)
    data = struct.pack("<Q", len(points))
    for i, xyz in enumerate(points):
        data += struct.pack("<Q3d3Bd", i + 1, *xyz, 255, 0, 0, 0.5) + struct.pack("<Qii", 1, 1, 0)
    (sparse / "points3D.bin").write_bytes(data)


def png() -> ConvertOptions:
    return ConvertOptions(image_format="png")


@pytest.mark.parametrize(("binary", "model"), [(True, "PINHOLE"), (False, "PINHOLE"), (True, "SIMPLE_PINHOLE")])
def test_model_poses_are_inverted_and_cameras_round_trip(tmp_path, binary, model):
    scene = rendered(0)
    write_colmap(tmp_path / "garden", scene, binary, model)
    report = convert("colmap", tmp_path / "garden", tmp_path / "out", png(), progress=False)
    assert report.written == 1 and report.views == 4 and not report.skipped_frames
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert meta.pose_source == "colmap" and meta.metric_scale == "none"
    assert_cameras_round_trip(meta, scene)
    for converted, original in zip(images, scene.images, strict=True):
        np.testing.assert_array_equal(converted, original)  # natural name order, not the model's id order


@pytest.mark.parametrize("binary", [True, False])
def test_the_models_2d_observations_project_from_the_converted_cameras(tmp_path, binary):
    """COLMAP's own pixels of its own 3D points, against psfm's cameras: the pixel conventions agree."""
    write_colmap(tmp_path / "garden", rendered(0), binary)
    model = read_model(tmp_path / "garden" / "sparse" / "0")
    assert len(model.points) == len(rendered(0).points)
    convert("colmap", tmp_path / "garden", tmp_path / "out", png(), progress=False)
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    checked = 0
    for view, image in zip(meta.views, sorted(model.images.values(), key=lambda image: image.name), strict=True):
        observed = image.point3d_ids >= 0
        xyz = np.array([model.points[i].xyz for i in image.point3d_ids[observed]]).reshape(-1, 3)
        pixels, _ = project(xyz, np.array(view.intrinsics), np.array(view.cam_to_world))
        np.testing.assert_allclose(pixels, image.points2d[observed], atol=1e-6)
        checked += len(xyz)
    assert checked > 0


def test_a_hand_written_pose_is_read_as_documented(tmp_path):
    """90 degrees about z, world-to-camera, as COLMAP's docs write it: independent of the test writer."""
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    (sparse / "cameras.txt").write_text("1 PINHOLE 64 48 50 51 32 24\n")
    (sparse / "images.txt").write_text("# comment\n1 0.7071067811865476 0 0 0.7071067811865476 1 2 3 1 a.png\n\n")
    (image,) = read_model(sparse).images.values()
    expected = np.eye(4)
    expected[:3, :3] = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]  # R^T of the rotation by +90 degrees about z
    expected[:3, 3] = [-2, 1, -3]  # -R^T t
    np.testing.assert_allclose(cam_to_world(image), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("model", "params", "distortion"),
    [
        ("SIMPLE_RADIAL", [50, 32, 24, 0.1], [0.1, 0, 0, 0]),
        ("RADIAL", [50, 32, 24, 0.1, -0.02], [0.1, -0.02, 0, 0]),
        ("OPENCV", [50, 51, 32, 24, 0.1, -0.02, 0.003, 0.004], [0.1, -0.02, 0.003, 0.004]),
        ("FULL_OPENCV", [50, 51, 32, 24, 0.1, -0.02, 0.003, 0.004, 0.01, 0.02, 0.03, 0.04], None),
        ("SIMPLE_RADIAL", [50, 32, 24, 0.0], "pinhole"),
    ],
)
def test_camera_model_parameters_map_to_opencv_coefficients(model, params, distortion):
    intrinsics, coefficients = pinhole(ColmapCamera(1, model, 64, 48, np.array(params, float)), "cameras.bin")
    assert intrinsics[0, 2] == 32 and intrinsics[1, 2] == 24 and intrinsics[0, 0] == 50
    if distortion == "pinhole":
        assert coefficients is None
    else:
        np.testing.assert_allclose(coefficients, params[4:] if distortion is None else distortion)


def test_a_distorted_opencv_camera_is_undistorted(tmp_path):
    smooth = [np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(2))) for image in rendered(0).images]
    scene = replace(rendered(0), images=smooth)
    write_colmap(tmp_path / "garden", scene, model="OPENCV")
    convert("colmap", tmp_path / "garden", tmp_path / "out", png(), progress=False)
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert_cameras_round_trip(meta, scene)
    distorted = distort_image(scene.images[1], scene.intrinsics[1], np.array(OPENCV_DISTORTION))
    restored = mean_abs_difference(images[1], scene.images[1], border=4)
    assert restored < 0.4 * mean_abs_difference(distorted, scene.images[1], border=4)


@pytest.mark.parametrize("binary", [True, False])
def test_an_unknown_camera_model_skips_the_scene_naming_the_file(tmp_path, binary):
    write_colmap(tmp_path / "root" / "good", rendered(0), binary)
    bad = write_colmap(tmp_path / "root" / "bad", rendered(0), binary) / "sparse" / "0"
    if binary:
        data = bytearray((bad / "cameras.bin").read_bytes())
        data[12:16] = struct.pack("<i", 99)  # first camera's model id
        (bad / "cameras.bin").write_bytes(bytes(data))
    else:
        (bad / "cameras.txt").write_text((bad / "cameras.txt").read_text().replace("PINHOLE", "WEIRD_LENS", 1))
    report = convert("colmap", tmp_path / "root", tmp_path / "out", png(), progress=False)
    assert report.written == 1 and report.skipped_scenes == {"unknown_camera_model": 1}
    name = "cameras.bin" if binary else "cameras.txt"
    assert str(bad / name) in report.problems[0] and ("99" in report.problems[0] or "WEIRD_LENS" in report.problems[0])


def test_fisheye_cameras_and_missing_images_skip_their_frames(tmp_path):
    folder = write_colmap(tmp_path / "fish", rendered(0), binary=False, model="OPENCV_FISHEYE")
    report = convert("colmap", folder, tmp_path / "out", png(), progress=False)
    assert report.written == 0 and report.skipped_frames == {"unsupported_camera_model": 4}
    assert "OPENCV_FISHEYE" in report.problems[0] and "cameras.txt" in report.problems[0]
    folder = write_colmap(tmp_path / "garden", rendered(0))
    (folder / "images" / "view_3.png").unlink()
    report = convert("colmap", folder, tmp_path / "out2", png(), progress=False)
    assert report.views == 3 and report.skipped_frames == {"missing_image": 1}
    assert "view_3.png not found" in report.problems[0]


def test_a_truncated_binary_model_is_named(tmp_path):
    sparse = write_colmap(tmp_path / "garden", rendered(0)) / "sparse" / "0"
    (sparse / "images.bin").write_bytes((sparse / "images.bin").read_bytes()[:50])
    with pytest.raises(CaptureError, match="images.bin: ends"):
        read_model(sparse)
    report = convert("colmap", tmp_path / "garden", tmp_path / "out", png(), progress=False)
    assert report.skipped_scenes == {"invalid_metadata": 1}
