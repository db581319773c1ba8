"""Video files: frames picked by content, stride / max_views / every_seconds, blur rejection, display rotation.

Every video is encoded by PyAV at test time: 16 frames of 64x48 at 8 fps, frame i a checkerboard over a
colour that names i, so which frames were taken is read back from the shards' pixels.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter

from psfm.cli import main
from psfm.converters.base import convert
from psfm.converters.options import ConvertOptions, VideoOptions
from psfm.errors import UsageError
from tests.converters.captures import read_shards

RATE = 8
FRAMES = 16


def colour(index: int) -> np.ndarray:
    return np.array([40 + 12 * index, 215 - 10 * index, 60 + 40 * (index % 4)])


def textured(index: int, blur: float = 0.0, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame ``index``: a 4-pixel checkerboard (+-30) over its colour, Gaussian-blurred by ``blur`` pixels."""
    rows, columns = np.mgrid[:height, :width]
    checker = ((rows // 4 + columns // 4) % 2 * 60 - 30)[..., None]
    image = np.clip(colour(index) + checker, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(blur))) if blur else image


def index_of(image: np.ndarray) -> int:
    """Which frame an image shows: the colour nearest its mean."""
    mean = image.reshape(-1, 3).mean(0)
    return int(np.argmin([np.abs(mean - colour(index)).sum() for index in range(FRAMES)]))


def write_video(
    path: Path, images: list[np.ndarray], rotation: int | None = None, bit_rate: int = 1_000_000, **flips: bool
) -> Path:
    """MPEG-4 part 2 (VP8 in WebM) at a bit rate that keeps mean colours within a few levels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx" if path.suffix == ".webm" else "mpeg4", rate=RATE)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt, stream.bit_rate = "yuv420p", bit_rate
        if rotation is not None:
            stream.set_display_rotation(rotation, **flips)
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def converted(source: Path, out: Path, **options) -> tuple:
    """Convert ``source``; the report and the one scene read back through the loader's reader."""
    report = convert("video", source, out, ConvertOptions(image_format="png", **options), progress=False)
    ((meta, images, _),) = read_shards(out).values()
    return report, meta, images


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("videos") / "walk.MP4", [textured(i) for i in range(FRAMES)])


def test_every_frame_in_order_unposed_with_assumed_intrinsics(walk, tmp_path):
    report, meta, images = converted(walk, tmp_path / "out")
    assert report.written == 1 and report.views == FRAMES
    assert [index_of(image) for image in images] == list(range(FRAMES))
    assert meta.scene_id == "walk" and meta.pose_source == "none" and meta.metric_scale == "none"
    assert all(view.cam_to_world is None for view in meta.views)
    source = meta.raw["source"]
    assert source["kind"] == "video" and source["intrinsics"] == "assumed" and source["fov_deg"] == 60.0
    assert source["frame_indices"] == list(range(FRAMES)) and source["frames_decoded"] == FRAMES
    assert source["frame_seconds"][:3] == [0.0, 0.125, 0.25]
    focal = 0.5 * 64 / math.tan(math.radians(60) / 2)
    np.testing.assert_allclose(meta.views[5].intrinsics, [[focal, 0, 32], [0, focal, 24], [0, 0, 1]])
    assert np.abs(images[7].astype(float) - textured(7)).mean() < 8  # the pixels, not only their mean colour


@pytest.mark.parametrize(
    ("options", "frames"),
    [
        ({"stride": 3}, [0, 3, 6, 9, 12, 15]),
        ({"max_views": 3}, [0, 6, 11]),  # spread over the whole video, not its first three frames
        ({"stride": 3, "max_views": 2}, [0, 9]),  # six windows of 3 frames in two runs of three
        ({"video": VideoOptions(every_seconds=0.5)}, [0, 4, 8, 12]),
        ({"video": VideoOptions(every_seconds=0.3)}, [0, 3, 5, 8, 10, 12, 15]),  # first frame at or after 0.3 k
        ({"video": VideoOptions(every_seconds=0.5), "max_views": 2}, [0, 8]),
    ],
)
def test_sampling_by_stride_time_and_view_limit(walk, tmp_path, options, frames):
    report, meta, images = converted(walk, tmp_path / "out", **options)
    assert [index_of(image) for image in images] == frames
    assert meta.raw["source"]["frame_indices"] == frames and report.views == len(frames)


def test_blur_rejection_takes_the_sharpest_of_each_window_and_counts_hopeless_windows(tmp_path):
    blur = [3, 1, 0, 1, 3, 3, 3, 3, 0, 3, 3, 3, 3, 0.5, 3, 3]  # windows of stride 4; the second is all blurred
    video = write_video(tmp_path / "shaky.mkv", [textured(i, b) for i, b in enumerate(blur)])
    _, _, images = converted(video, tmp_path / "first", stride=4)
    assert [index_of(image) for image in images] == [0, 4, 8, 12]  # no rejection: each window's first frame
    report, meta, images = converted(video, tmp_path / "sharpest", stride=4, video=VideoOptions(min_sharpness=100))
    assert [index_of(image) for image in images] == [2, 8, 13]
    assert report.skipped_frames == {"blurry_frame": 1} and report.views == 3
    assert report.problems[0].startswith(f"{video} frames 4-7: the sharpest, ")
    assert "< video.min_sharpness=100" in report.problems[0]


def test_a_video_too_blurred_everywhere_is_skipped_as_a_scene(tmp_path):
    video = write_video(tmp_path / "fog.mp4", [textured(i, 3) for i in range(4)])
    report = convert("video", video, tmp_path / "out", ConvertOptions(video=VideoOptions(min_sharpness=100)))
    assert report.written == 0 and report.skipped_scenes == {"no_usable_frames": 1}
    assert report.skipped_frames == {"blurry_frame": 4}


def quadrants(height: int = 64, width: int = 48) -> np.ndarray:
    """An upright portrait picture no turn or mirror maps onto itself."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (230, 30, 30)
    image[: height // 2, width // 2 :] = (30, 230, 30)
    image[height // 2 :, : width // 2] = (30, 30, 230)
    image[height // 2 :, width // 2 :] = (230, 230, 230)
    return image


@pytest.mark.parametrize(
    ("degrees", "hflip", "vflip"),
    [(0, False, False), (90, False, False), (-90, False, False), (180, False, False),
     (0, True, False), (0, False, True), (90, True, False), (90, False, True)],
)  # fmt: skip
def test_the_display_matrix_is_applied_as_players_apply_it(tmp_path, degrees, hflip, vflip):
    """PyAV writes "turn ``degrees`` counter-clockwise, then mirror": store the inverse, expect the upright."""
    upright = quadrants()
    stored = upright[:, ::-1] if hflip else upright[::-1] if vflip else upright
    stored = np.ascontiguousarray(np.rot90(stored, -degrees // 90))
    video = write_video(tmp_path / "phone.mov", [stored, stored], degrees, hflip=hflip, vflip=vflip)
    _, meta, images = converted(video, tmp_path / "out")
    assert images[0].shape == upright.shape
    assert np.abs(images[0].astype(float) - upright).mean() < 6
    np.testing.assert_allclose(np.array(meta.views[0].intrinsics)[:2, 2], [24, 32])  # portrait: cx = W/2


def test_unreadable_videos_are_skipped_and_counted_while_the_others_convert(walk, tmp_path):
    folder = tmp_path / "videos"
    good = write_video(folder / "good.webm", [textured(i) for i in range(4)])
    whole = walk.read_bytes()
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # recording cut off: the index at the end is lost
    (folder / "empty.avi").write_bytes(b"")
    (folder / "notes.txt").write_text("not a video")
    report = convert("video", folder, tmp_path / "out", ConvertOptions(image_format="png"), progress=False)
    assert report.scenes_found == 3 and report.written == 1 and report.skipped_scenes == {"unreadable_video": 2}
    assert any(str(folder / "cut.mp4") in problem for problem in report.problems)
    assert any(str(folder / "empty.avi") in problem for problem in report.problems)
    assert list(read_shards(tmp_path / "out")) == ["good"] and good.exists()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    listed = [shard["name"] for shard in manifest["shards"]]
    assert sorted(path.name for path in (tmp_path / "out").glob("*.tar*")) == listed  # nothing half-written
    assert manifest["num_samples"] == 1


def test_the_command_line_reads_video_options(walk, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["convert", "video", f"input={walk}", "out=shards", "video.every_seconds=1", "progress=false"])
    assert "1 found, 1 written" in capsys.readouterr().out
    ((meta, images, _),) = read_shards(tmp_path / "shards").values()
    assert [index_of(image) for image in images] == [0, 8]


def test_without_pyav_the_usage_error_names_the_extra(walk, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # what a missing package looks like to import
    with pytest.raises(UsageError, match=r"pip install 'psfm\[video\]'"):
        convert("video", walk, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
