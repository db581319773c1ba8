"""Footprint geometry: hulls, clipping, minimum-area rectangles, box IoU and distances."""

from __future__ import annotations

import numpy as np
import pytest

from psfm.qa.boxes import box_distance, intersection_volume, iou_3d, overlap_of_smaller
from psfm.qa.polygons import clip_convex, convex_hull, min_area_rectangle, polygon_area, rectangle_corners
from psfm.worlds.scene import OrientedBox


def test_convex_hull_contains_every_point_and_is_counter_clockwise():
    rng = np.random.default_rng(0)
    for _ in range(50):
        points = rng.normal(size=(int(rng.integers(3, 400)), 2)) * rng.uniform(0.1, 3, 2)
        hull = convex_hull(points)
        assert polygon_area(hull) > 0
        edges = np.roll(hull, -1, axis=0) - hull
        cross = edges[:, 0, None] * (points[None, :, 1] - hull[:, 1, None]) - edges[:, 1, None] * (
            points[None, :, 0] - hull[:, 0, None]
        )
        assert np.all(cross >= -1e-9)


@pytest.mark.parametrize("angle", [0.0, 0.3, 1.2, -0.7])
def test_min_area_rectangle_recovers_a_rotated_rectangle(angle):
    corners = rectangle_corners(np.array([1.0, -2.0]), np.array([0.8, 0.3]), angle)
    rng = np.random.default_rng(1)
    inside = (
        corners[0] + rng.random((300, 1)) * (corners[1] - corners[0]) + rng.random((300, 1)) * (corners[3] - corners[0])
    )
    rectangle = min_area_rectangle(convex_hull(np.concatenate([corners, inside])))
    assert np.allclose(sorted(rectangle.size), [0.3, 0.8], atol=1e-9)
    assert np.allclose(rectangle.center, [1.0, -2.0], atol=1e-9)


def test_clipping_two_squares():
    a = rectangle_corners(np.zeros(2), np.array([2.0, 2.0]), 0.0)
    b = rectangle_corners(np.array([1.0, 1.0]), np.array([2.0, 2.0]), 0.0)
    assert polygon_area(clip_convex(a, b)) == pytest.approx(1.0)
    far = rectangle_corners(np.array([5.0, 5.0]), np.array([1.0, 1.0]), 0.0)
    assert polygon_area(clip_convex(a, far)) == 0.0


def test_iou_and_overlap():
    box = OrientedBox((0.0, 0.0, 0.5), (1.0, 1.0, 1.0), 0.4)
    assert iou_3d(box, box) == pytest.approx(1.0)
    shifted = OrientedBox((0.5, 0.0, 0.5), (1.0, 1.0, 1.0), 0.0)
    aligned = OrientedBox((0.0, 0.0, 0.5), (1.0, 1.0, 1.0), 0.0)
    assert iou_3d(aligned, shifted) == pytest.approx(1 / 3)
    inner = OrientedBox((0.0, 0.0, 0.5), (0.5, 0.5, 0.5), 0.0)
    assert overlap_of_smaller(aligned, inner) == pytest.approx(1.0)
    assert intersection_volume(aligned, OrientedBox((0.0, 0.0, 3.0), (1.0, 1.0, 1.0), 0.0)) == 0.0
    # a 45-degree square turned inside its twin: known octagon overlap 2(sqrt(2) - 1)
    turned = OrientedBox((0.0, 0.0, 0.5), (1.0, 1.0, 1.0), np.pi / 4)
    assert intersection_volume(aligned, turned) == pytest.approx(2 * (np.sqrt(2) - 1), rel=1e-9)


def test_box_distance_closed_cases():
    a = OrientedBox((0.0, 0.0, 0.5), (1.0, 1.0, 1.0), 0.0)
    assert box_distance(a, OrientedBox((2.0, 0.0, 0.5), (1.0, 1.0, 1.0), 0.0)) == pytest.approx(1.0)
    corner = OrientedBox((2.0, 2.0, 0.5), (1.0, 1.0, 1.0), 0.0)
    assert box_distance(a, corner) == pytest.approx(np.sqrt(2.0))
    assert box_distance(a, OrientedBox((0.2, 0.0, 0.5), (1.0, 1.0, 1.0), 0.3)) == 0.0
    above = OrientedBox((0.0, 0.0, 2.0), (1.0, 1.0, 1.0), 0.7)
    assert box_distance(a, above) == pytest.approx(0.5)
