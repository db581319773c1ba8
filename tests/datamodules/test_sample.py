"""``build_sample``: every producer's scenes go through it, so its refusals must say which scene and view."""

from __future__ import annotations

import re

import numpy as np
import pytest

from psfm.datamodules.sample import build_sample
from psfm.geometry import intrinsics_from_fov


def test_views_of_different_sizes_are_refused_naming_the_scene_the_view_and_both_sizes():
    """A converter fed one odd frame must say which one, not fail later in the loader's stacking.

    (mutation testing: ``ValueError(None)`` in place of the message survived.)
    """
    images = [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8), np.zeros((8, 12, 3), np.uint8)]
    intrinsics = [intrinsics_from_fov(16, 16, 60.0)] * 3
    expected = "room_07: view 2 is (8, 12), view 0 is (16, 16)"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        build_sample("room_07", images, intrinsics, None, "none", {"kind": "test"})


def test_a_bad_key_is_refused_by_build_sample_by_name():
    """(mutation testing: the ``where`` of the message garbled survived.)"""
    images, intrinsics = [np.zeros((8, 8, 3), np.uint8)], [intrinsics_from_fov(8, 8, 60.0)]
    with pytest.raises(ValueError, match=r"^build_sample: scene key 'room\.07' must match "):
        build_sample("room.07", images, intrinsics, None, "none", {"kind": "test"})


def test_jpeg_quality_reaches_the_encoder():
    """A lower quality writes fewer bytes of the same noisy view (mutation testing: the quality dropped survived)."""
    images = [np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)]
    intrinsics = [intrinsics_from_fov(32, 32, 60.0)]

    def image_bytes(quality: int) -> int:
        members = build_sample("room", images, intrinsics, None, "none", {}, jpeg_quality=quality).members
        (name,) = [name for name in members if name.endswith(".jpg")]
        return len(members[name])

    assert image_bytes(30) < image_bytes(60) < image_bytes(90)
