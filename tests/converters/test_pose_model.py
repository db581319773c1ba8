"""``pose_model=package.module:factory``: a user's pose model gives unposed captures their cameras.

The models live in a module written to ``tmp_path`` at test time, as a user's would live outside psfm.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from psfm.cli import main
from psfm.converters.base import convert
from psfm.converters.options import ConvertOptions, VideoOptions
from psfm.errors import UsageError
from tests.converters.captures import read_shards
from tests.converters.test_images import write_folder
from tests.converters.test_video import textured, write_video
from tests.test_errors import one_line_exit

MODULE = "psfm_test_pose_models"
MODELS = '''
import numpy as np

SEEN = []  # (images, intrinsics) of every call


def on_a_circle(views, radius=2.0):
    """Cameras on a circle around the origin, looking at it (OpenCV: x right, y down, z forward)."""
    poses = []
    for index in range(views):
        angle = 2 * np.pi * index / views
        centre = np.array([radius * np.cos(angle), 0.1 * index, radius * np.sin(angle)])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross([0.0, 1.0, 0.0], forward)
        right /= np.linalg.norm(right)
        pose = np.eye(4)
        pose[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
        pose[:3, 3] = centre
        poses.append(pose)
    return np.stack(poses)


def circle():
    def predict(images, intrinsics):
        SEEN.append((images, intrinsics))
        return {"cam_to_world": on_a_circle(len(images)), "metric_scale": True}
    return predict


def refining():
    def predict(images, intrinsics):
        refined = [np.diag([1.1, 1.1, 1.0]) @ camera for camera in intrinsics]
        return {"cam_to_world": on_a_circle(len(images)), "intrinsics": np.stack(refined)}
    return predict


def picky():
    def predict(images, intrinsics):
        if len(images) == 3:
            raise RuntimeError("not enough parallax")
        return {"cam_to_world": on_a_circle(len(images))}
    return predict


def sheared():
    return lambda images, intrinsics: {"cam_to_world": on_a_circle(len(images)) * np.array([1.0, 1.0, 1.3, 1.0])}


def one_short():
    return lambda images, intrinsics: {"cam_to_world": on_a_circle(len(images) - 1)}


def misspelled():
    return lambda images, intrinsics: {"cam2world": on_a_circle(len(images))}


def nan_pose():
    return lambda images, intrinsics: {"cam_to_world": on_a_circle(len(images)) * np.nan}


not_callable = 42


def returns_a_number():
    return 7
'''


@pytest.fixture
def models(tmp_path, monkeypatch):
    """The models module, importable, freshly loaded for each test."""
    (tmp_path / f"{MODULE}.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    from psfm.converters.poses import load_pose_model

    load_pose_model.cache_clear()
    yield
    load_pose_model.cache_clear()
    sys.modules.pop(MODULE, None)


def expected_circle(views: int) -> np.ndarray:
    return sys.modules[MODULE].on_a_circle(views)


def test_predicted_poses_land_in_the_shards_exactly(models, tmp_path):
    folder = write_folder(tmp_path / "walk")
    options = ConvertOptions(image_format="png", pose_model=f"{MODULE}:circle")
    report = convert("images", folder, tmp_path / "out", options, progress=False)
    assert report.written == 1 and report.views == 4
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    assert meta.pose_source == "predicted" and meta.metric_scale == "predicted"
    assert meta.raw["source"]["pose_model"] == f"{MODULE}:circle" and meta.raw["source"]["intrinsics"] == "assumed"
    np.testing.assert_array_equal([view.cam_to_world for view in meta.views], expected_circle(4))
    ((images, intrinsics),) = sys.modules[MODULE].SEEN  # one call, with the views as written
    assert [image.shape for image in images] == [(48, 64, 3)] * 4 and images[0].dtype == np.uint8
    np.testing.assert_array_equal(intrinsics, [view.intrinsics for view in meta.views])


def test_a_video_gets_predicted_poses_and_refined_intrinsics(models, tmp_path):
    video = write_video(tmp_path / "walk.mp4", [textured(index) for index in range(8)])
    options = ConvertOptions(pose_model=f"{MODULE}:refining", video=VideoOptions(every_seconds=0.25))
    report = convert("video", video, tmp_path / "out", options, progress=False)
    assert report.views == 4
    ((meta, _, _),) = read_shards(tmp_path / "out").values()
    assert meta.pose_source == "predicted" and meta.metric_scale == "none"  # the model does not claim metres
    assert meta.raw["source"]["intrinsics"] == "predicted"
    np.testing.assert_array_equal([view.cam_to_world for view in meta.views], expected_circle(4))
    focal = 1.1 * 0.5 * 64 / np.tan(np.radians(30))
    np.testing.assert_allclose(np.array(meta.views[2].intrinsics), [[focal, 0, 35.2], [0, focal, 26.4], [0, 0, 1]])


def test_a_model_raising_on_one_scene_skips_that_scene_only(models, tmp_path):
    root = tmp_path / "folders"
    write_folder(root / "wide")
    (write_folder(root / "narrow") / "frame_20.png").unlink()  # three views: the model refuses it
    options = ConvertOptions(pose_model=f"{MODULE}:picky")
    report = convert("images", root, tmp_path / "out", options, progress=False)
    assert report.written == 1 and report.skipped_scenes == {"pose_model_failed": 1}
    (problem,) = report.problems
    assert problem == f"{root / 'narrow'}: pose_model={MODULE}:picky raised RuntimeError: not enough parallax"
    assert list(read_shards(tmp_path / "out")) == ["wide"]


@pytest.mark.parametrize(
    ("factory", "said"),
    [
        ("sheared", "not a rigid camera-to-world transform (rotation block is not orthonormal"),
        ("nan_pose", "holds NaN or infinity"),
        ("one_short", "answered cam_to_world of shape (3, 4, 4), expected (4, 4, 4)"),
        ("misspelled", "answered unknown keys ['cam2world']"),
    ],
)
def test_a_bad_answer_skips_the_scene_with_the_reason(models, tmp_path, factory, said):
    folder = write_folder(tmp_path / "walk")
    report = convert("images", folder, tmp_path / "out", ConvertOptions(pose_model=f"{MODULE}:{factory}"))
    assert report.written == 0 and report.skipped_scenes == {"bad_pose_prediction": 1}
    assert report.problems[0].startswith(f"{folder}: pose_model={MODULE}:{factory} ") and said in report.problems[0]


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("no_colon", "pose_model='no_colon' must be sfm or look like 'package.module:factory'"),
        ("psfm_no_such_module:make", "pose_model='psfm_no_such_module:make': cannot import psfm_no_such_module"),
        (f"{MODULE}:absent", f"pose_model='{MODULE}:absent': {MODULE} has no callable 'absent'"),
        (f"{MODULE}:not_callable", "has no callable 'not_callable'"),
        (f"{MODULE}:returns_a_number", "returns_a_number() returned 7, not a callable"),
    ],
)
def test_a_spec_that_cannot_load_is_a_usage_error_naming_it(models, tmp_path, spec, said):
    folder = write_folder(tmp_path / "walk")
    with pytest.raises(UsageError) as refused:
        convert("images", folder, tmp_path / "out", ConvertOptions(pose_model=spec))
    assert said in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_the_command_line_takes_a_pose_model_and_refuses_it_for_posed_formats(models, tmp_path, monkeypatch, capsys):
    folder = write_folder(tmp_path / "walk")
    monkeypatch.chdir(tmp_path)
    main(["convert", "images", f"input={folder}", "out=shards", f"pose_model={MODULE}:circle", "progress=false"])
    ((meta, _, _),) = read_shards(tmp_path / "shards").values()
    assert meta.pose_source == "predicted"
    argv = ["convert", "colmap", f"input={folder}", "out=y", f"pose_model={MODULE}:circle"]
    message = one_line_exit(argv, tmp_path, monkeypatch, capsys)
    assert "is for unposed captures (images, video); colmap brings its own poses" in message


def test_worker_processes_run_the_model_too(models, tmp_path):
    root = tmp_path / "folders"
    for name in ("a", "b", "c"):
        write_folder(root / name)
    options = ConvertOptions(pose_model=f"{MODULE}:circle")
    report = convert("images", root, tmp_path / "out", options, workers=2, progress=False)
    assert report.written == 3
    for meta, _, _ in read_shards(tmp_path / "out").values():
        np.testing.assert_array_equal([view.cam_to_world for view in meta.views], expected_circle(4))


def test_folders_written_before_pose_model_existed_still_resume(tmp_path):
    """Unset options stay out of the manifest's info, so adding one does not refuse older folders."""
    folder = write_folder(tmp_path / "walk")
    convert("images", folder, tmp_path / "out", progress=False)
    assert "pose_model" not in (tmp_path / "out" / "manifest.json").read_text()
