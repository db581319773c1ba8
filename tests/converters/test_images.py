"""Unposed image folders: natural order, EXIF orientation, assumed intrinsics, mixed sizes covered and cropped."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from psfm.converters.base import convert
from psfm.converters.options import ConvertOptions
from tests.converters.captures import read_shards, rendered, save_png

NAMES = ["frame_1.png", "frame_2.png", "frame_10.png", "frame_20.png"]  # string order would put 10 before 2


def write_folder(folder: Path, rotated: int | None = 2) -> Path:
    """The rendered views as a phone leaves them: view ``rotated`` stored sideways with EXIF orientation 6."""
    for index, (name, image) in enumerate(zip(NAMES, rendered(0).images, strict=True)):
        folder.mkdir(parents=True, exist_ok=True)
        if index == rotated:
            exif = Image.Exif()
            exif[274] = 6  # "rotate 90 degrees clockwise to display"
            Image.fromarray(np.rot90(image, 1).copy()).save(folder / name, exif=exif)
        else:
            save_png(folder / name, image)
    return folder


def test_natural_order_exif_orientation_and_no_poses(tmp_path):
    write_folder(tmp_path / "walk")
    report = convert("images", tmp_path / "walk", tmp_path / "out", ConvertOptions(image_format="png"), progress=False)
    assert report.written == 1 and report.views == 4
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert meta.pose_source == "none" and all(view.cam_to_world is None for view in meta.views)
    assert meta.raw["source"]["intrinsics"] == "assumed"
    for converted, original in zip(images, rendered(0).images, strict=True):
        np.testing.assert_array_equal(converted, original)
    focal = 0.5 * 64 / math.tan(math.radians(60) / 2)
    np.testing.assert_allclose(meta.views[2].intrinsics, [[focal, 0, 32], [0, focal, 24], [0, 0, 1]])


def test_mixed_sizes_are_scaled_to_cover_the_first_and_centre_cropped(tmp_path):
    folder = write_folder(tmp_path / "walk", rotated=None)
    big = np.asarray(Image.fromarray(rendered(0).images[1]).resize((128, 96), Image.Resampling.NEAREST))
    save_png(folder / NAMES[1], big)  # twice the size: comes back as the original
    save_png(folder / NAMES[3], rendered(1, height=64, width=48).images[0])  # portrait among landscapes
    convert("images", folder, tmp_path / "out", ConvertOptions(image_format="png"), progress=False)
    ((meta, images, _),) = read_shards(tmp_path / "out").values()
    assert all(image.shape == (48, 64, 3) for image in images)
    assert np.mean(np.abs(images[1].astype(float) - rendered(0).images[1])) < 2.0
    portrait = np.array(meta.views[3].intrinsics)
    focal = 0.5 * 64 / math.tan(math.radians(60) / 2)  # assumed on the portrait's longer side (64), then x4/3
    np.testing.assert_allclose(portrait[0, 0], focal * 64 / 48)
    # 48x64 -> 64x85 (rows rounded, so y scales by 85/64, not 4/3), then 18 rows cropped off the top
    np.testing.assert_allclose(portrait[1, 1], focal * 85 / 64)
    np.testing.assert_allclose(portrait[:2, 2], [32, 32 * 85 / 64 - 18])


def test_stride_limit_and_an_unreadable_image(tmp_path):
    folder = write_folder(tmp_path / "walk")
    (folder / "frame_3.png").write_bytes(b"not an image")
    options = ConvertOptions(stride=2, max_views=1, image_format="png")
    report = convert("images", folder, tmp_path / "out", options, progress=False)
    assert report.views == 1 and report.skipped_frames == {"unreadable_image": 1}
    assert str(folder / "frame_3.png") in report.problems[0]
    ((_, images, _),) = read_shards(tmp_path / "out").values()
    np.testing.assert_array_equal(images[0], rendered(0).images[0])
