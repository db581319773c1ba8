"""View sampling rules and intrinsics-consistent fitting."""

from __future__ import annotations

import random

import numpy as np
import pytest

from psfm.datamodules.transforms import fit_view
from psfm.datamodules.views import ViewSampling
from psfm.geometry import intrinsics_from_fov, look_at, project


def test_random_selection_is_distinct_and_in_range():
    sampling, rng = ViewSampling(3, 6), random.Random(0)
    for _ in range(200):
        count = sampling.num_views(rng, 5)
        assert 3 <= count <= 5
        chosen = sampling.select(rng, 10, count)
        assert len(set(chosen)) == count and all(0 <= i < 10 for i in chosen)
    assert sampling.num_context(6) == 3 and sampling.num_context(1) == 1


def test_window_selection_is_a_strided_stretch():
    sampling, rng = ViewSampling(4, 4, strategy="window", max_stride=3), random.Random(1)
    strides = set()
    for _ in range(200):
        chosen = sorted(sampling.select(rng, 20, 4))
        steps = set(np.diff(chosen))
        assert len(steps) == 1 and 1 <= steps.pop() <= 3
        strides.add(chosen[1] - chosen[0])
    assert strides == {1, 2, 3}


@pytest.mark.parametrize(
    "bad", [dict(min_views=0), dict(min_views=5, max_views=4), dict(context_ratio=0.0), dict(strategy="x")]
)
def test_invalid_sampling_is_refused(bad):
    with pytest.raises(ValueError, match="views:"):
        ViewSampling(**bad)


@pytest.mark.parametrize("crop", ["center", "random"])
def test_fitting_keeps_projection_consistent(crop):
    """A 3D point lands on the same image content before and after resize + crop."""
    height, width = 60, 90
    intrinsics = intrinsics_from_fov(width, height, 70.0)
    pose = look_at(np.array([0.0, 0.0, 1.0]), np.array([3.0, 0.0, 1.0]))
    point = np.array([[3.0, 0.4, 1.2]])
    u, v = project(point, intrinsics, pose)[0][0]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[int(v) - 2 : int(v) + 3, int(u) - 2 : int(u) + 3] = 255  # a bright square around the point
    depth = np.full((height, width), 2.0, np.float32)
    fitted, new_intrinsics, new_depth, _ = fit_view(rgb, intrinsics, (32, 32), crop, random.Random(3), depth=depth)
    u2, v2 = project(point, new_intrinsics, pose)[0][0]
    assert fitted.shape == (32, 32, 3) and new_depth.shape == (32, 32) and np.all(new_depth == 2.0)
    assert fitted[int(v2), int(u2)].min() > 128  # the point still sits on its bright square
    ys, xs = np.nonzero(fitted[..., 0] > 128)
    assert abs(xs.mean() + 0.5 - u2) < 0.75 and abs(ys.mean() + 0.5 - v2) < 0.75
