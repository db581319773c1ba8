"""``pose_model=sfm``: COLMAP poses for unposed captures, checked against the rendered truth up to a similarity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from psfm.converters.base import convert
from psfm.converters.options import ConvertOptions, SfmOptions
from psfm.errors import UsageError
from tests.converters.captures import painted, read_shards, save_png

pycolmap = pytest.importorskip("pycolmap")
av = pytest.importorskip("av")

VIEWS = 10
MAX_ROTATION_ERROR_DEG = 2.0
MAX_CENTRE_ERROR = 0.02  # of the largest distance between two true camera centres


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation and translation taking points ``source`` [N, 3] onto ``target`` in least squares (Umeyama).

    ``target ≈ scale * rotation @ source + translation``; the sign fix keeps ``rotation`` a rotation.
    """
    source_mean, target_mean = source.mean(0), target.mean(0)
    centred_source, centred_target = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source / len(source))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.sum(singular * np.diag(sign)) / np.mean(np.sum(centred_source**2, axis=1)))
    return scale, rotation, target_mean - scale * rotation @ source_mean


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation between rotations ``a`` and ``b``."""
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1.0, 1.0))))


def pose_errors(meta, truth) -> tuple[list[float], list[float], float]:
    """Per view: rotation error (degrees) and centre error (of the true centres' extent) after aligning the
    estimated camera centres onto the true ones; and the scale of that alignment."""
    estimated = [np.array(view.cam_to_world) for view in meta.views]
    true_centres = np.array([pose[:3, 3] for pose in truth])
    scale, rotation, translation = similarity(np.array([pose[:3, 3] for pose in estimated]), true_centres)
    extent = max(np.linalg.norm(a - b) for a in true_centres for b in true_centres)
    rotations = [angle_deg(true[:3, :3], rotation @ pose[:3, :3]) for pose, true in zip(estimated, truth, strict=True)]
    centres = [
        float(np.linalg.norm(scale * rotation @ pose[:3, 3] + translation - true[:3, 3]) / extent)
        for pose, true in zip(estimated, truth, strict=True)
    ]
    return rotations, centres, scale


@pytest.fixture(scope="module")
def photo_walk(tmp_path_factory) -> tuple:
    """Ten textured views as an image folder, and a featureless grey image among them that cannot register."""
    folder = tmp_path_factory.mktemp("sfm") / "walk"
    scene = painted(0)
    for index, image in enumerate(scene.images):
        save_png(folder / f"IMG_{index}.png", image)
    save_png(folder / "IMG_4b.png", np.full_like(scene.images[0], 128))
    out = folder.parent / "out"
    report = convert("images", folder, out, ConvertOptions(image_format="png", pose_model="sfm"), progress=False)
    ((meta, _, _),) = read_shards(out).values()
    return report, meta, scene, folder


def test_sfm_poses_match_the_rendered_cameras_up_to_a_similarity(photo_walk):
    report, meta, scene, _ = photo_walk
    assert report.written == 1 and meta.pose_source == "colmap" and meta.metric_scale == "none"
    assert meta.num_views == VIEWS
    rotations, centres, _ = pose_errors(meta, scene.cam_to_world)
    assert max(rotations) < MAX_ROTATION_ERROR_DEG, rotations
    assert max(centres) < MAX_CENTRE_ERROR, centres
    focal = scene.intrinsics[0][0, 0]
    for view in meta.views:
        intrinsics = np.array(view.intrinsics)
        assert intrinsics[0, 0] == pytest.approx(focal, rel=0.03) and intrinsics[1, 1] == intrinsics[0, 0]
        np.testing.assert_allclose(intrinsics[:2, 2], [160, 120])
    sfm = meta.raw["source"]["sfm"]
    assert sfm["views_given"] == VIEWS + 1 and sfm["registered_images"] == VIEWS
    assert sfm["registered_views"] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # IMG_4b, sorted after IMG_4, is view 5
    assert sfm["camera_model"] == "SIMPLE_RADIAL" and sfm["matcher"] == "exhaustive"
    assert 0 < sfm["mean_reprojection_error_px"] < 1.0
    assert meta.raw["source"]["intrinsics"] == "colmap"


def test_a_view_that_does_not_register_is_dropped_and_named(photo_walk):
    report, _, _, folder = photo_walk
    assert report.skipped_frames == {"not_registered": 1}
    (problem,) = report.problems
    assert problem.startswith(str(folder / "IMG_4b.png")) and "not registered" in problem


def test_a_scene_with_fewer_than_two_registered_views_is_skipped(tmp_path):
    for index in range(3):
        save_png(tmp_path / "blank" / f"{index}.png", np.full((60, 80, 3), 40 * index, np.uint8))
    report = convert("images", tmp_path / "blank", tmp_path / "out", ConvertOptions(pose_model="sfm"), progress=False)
    assert report.written == 0 and report.skipped_scenes == {"sfm_failed": 1}
    assert "registered 0 of 3 views" in report.problems[0]


def test_a_video_gets_sequentially_matched_poses_and_its_frame_lists_follow_the_views(tmp_path):
    from tests.converters.test_video import write_video

    scene = painted(0)
    grey = np.full_like(scene.images[0], 128)
    # at the video tests' 1 Mbit/s the far views lose enough SIFT matches to form a second model of their own
    video = write_video(tmp_path / "walk.mp4", [*scene.images[:5], grey, *scene.images[5:]], bit_rate=8_000_000)
    options = ConvertOptions(image_format="png", pose_model="sfm", sfm=SfmOptions(matcher="sequential"))
    report = convert("video", video, tmp_path / "out", options, progress=False)
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    assert report.skipped_frames == {"not_registered": 1} and "frame 5 (" in report.problems[0]
    assert meta.raw["source"]["frame_indices"] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert len(meta.raw["source"]["frame_seconds"]) == VIEWS and meta.raw["source"]["sfm"]["matcher"] == "sequential"
    rotations, centres, _ = pose_errors(meta, scene.cam_to_world)
    assert max(rotations) < MAX_ROTATION_ERROR_DEG and max(centres) < MAX_CENTRE_ERROR, (rotations, centres)


def test_without_pycolmap_the_usage_error_names_the_extra(tmp_path, monkeypatch):
    save_png(tmp_path / "walk" / "0.png", np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # what a missing package looks like to import
    with pytest.raises(UsageError, match=r"pose_model=sfm needs pycolmap: pip install 'psfm\[colmap\]'"):
        convert("images", tmp_path / "walk", tmp_path / "out", ConvertOptions(pose_model="sfm"), progress=False)
    assert not (tmp_path / "out").exists()


def test_sfm_options_are_checked_before_any_work():
    with pytest.raises(UsageError, match="distortion=refuse would not resample"):
        ConvertOptions(pose_model="sfm", distortion="refuse")
    ConvertOptions(pose_model="sfm", distortion="refuse", sfm=SfmOptions(camera_model="PINHOLE"))
    with pytest.raises(UsageError, match="sfm.matcher='vocabtree'"):
        SfmOptions(matcher="vocabtree")


def test_sfm_is_refused_for_a_format_with_its_own_poses(tmp_path):
    with pytest.raises(UsageError, match="scannet brings its own poses"):
        convert("scannet", Path(tmp_path), tmp_path / "out", ConvertOptions(pose_model="sfm"), progress=False)


@pytest.mark.parametrize("threads", [0, -2])
def test_sfm_threads_must_be_a_count_or_every_core(threads):
    with pytest.raises(UsageError, match="sfm.threads"):
        SfmOptions(threads=threads)
    assert SfmOptions(threads=-1).threads == -1 and SfmOptions().threads == 1  # every core; the reproducible default
