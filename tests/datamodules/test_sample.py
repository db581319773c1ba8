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
