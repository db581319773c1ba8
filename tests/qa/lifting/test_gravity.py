"""Gravity from the floor: residual tilt under combined pitch and roll, orientation, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from psfm.qa.lifting.gravity import fit_floor, floor_transform, gravity_rotation, residual_tilt_deg


def rotation_x(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_y(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_z(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def tilted_room(pitch: float, roll: float, yaw: float, rng: np.random.Generator):
    """Floor + two walls + a box on the floor + cameras, all seen from a frame tilted by (pitch, roll, yaw).

    Returns (points [N, 3], camera centres [V, 3], camera ups [V, 3], true up [3]) in the tilted frame.
    """
    floor = np.column_stack([rng.uniform(-3, 3, 4000), rng.uniform(-2, 2, 4000), rng.normal(0, 0.003, 4000)])
    wall_x = np.column_stack([np.full(1500, 3.0), rng.uniform(-2, 2, 1500), rng.uniform(0, 2.6, 1500)])
    wall_y = np.column_stack([rng.uniform(-3, 3, 1500), np.full(1500, 2.0), rng.uniform(0, 2.6, 1500)])
    table_top = np.column_stack([rng.uniform(-0.5, 0.5, 800), rng.uniform(-0.4, 0.4, 800), np.full(800, 0.75)])
    points = np.concatenate([floor, wall_x, wall_y, table_top])
    centers = np.column_stack([rng.uniform(-1, 1, 6), rng.uniform(-1, 1, 6), rng.uniform(1.2, 1.7, 6)])
    ups = np.tile([0.0, 0.0, 1.0], (6, 1)) + rng.normal(0, 0.1, (6, 3))  # hand-held: roughly upright
    to_input = rotation_z(yaw) @ rotation_y(roll) @ rotation_x(pitch)
    offset = np.array([0.4, -1.1, 2.3])
    return points @ to_input.T + offset, centers @ to_input.T + offset, ups @ to_input.T, to_input @ [0.0, 0.0, 1.0]


@pytest.mark.parametrize(("pitch", "roll"), [(20, 15), (40, -30), (-25, 35), (5, -8), (0, 30), (35, 0)])
def test_floor_alignment_leaves_under_a_tenth_of_a_degree(pitch, roll):
    rng = np.random.default_rng(abs(pitch) * 100 + abs(roll))
    points, centers, ups, true_up = tilted_room(pitch, roll, yaw=37.0, rng=rng)
    floor = fit_floor(points, centers, ups, rng, threshold=0.02)
    assert floor is not None
    transform = floor_transform(floor)
    assert residual_tilt_deg(transform[:3, :3], true_up) < 0.1
    assert np.allclose(transform[:3, :3] @ transform[:3, :3].T, np.eye(3), atol=1e-9)
    assert np.linalg.det(transform[:3, :3]) == pytest.approx(1.0)  # a rotation, never a reflection
    # the floor lands on z = 0 and the cameras above it: "up" was not flipped towards the floor
    lifted_centers = centers @ transform[:3, :3].T + transform[:3, 3]
    assert np.all(lifted_centers[:, 2] > 1.0)


@pytest.mark.parametrize(("pitch", "roll"), [(20, 15), (40, -30)])
def test_building_the_rotation_from_columns_would_fail(pitch, roll):
    """The known bug (axes as columns): the property above catches it."""
    true_up = rotation_y(roll) @ rotation_x(pitch) @ [0.0, 0.0, 1.0]
    rows = gravity_rotation(true_up)
    assert residual_tilt_deg(rows, true_up) < 1e-6
    assert residual_tilt_deg(rows.T, true_up) > 1.0


def test_an_input_frame_already_upright_is_left_alone():
    rotation = gravity_rotation(np.array([0.0, 0.0, 1.0]))
    assert np.allclose(rotation, np.eye(3))


def test_no_floor_is_refused():
    rng = np.random.default_rng(0)
    walls = np.column_stack([np.full(3000, 3.0), rng.uniform(-2, 2, 3000), rng.uniform(0, 2.6, 3000)])
    ceiling = np.column_stack([rng.uniform(-3, 3, 3000), rng.uniform(-2, 2, 3000), np.full(3000, 2.6)])
    centers, ups = np.array([[0.0, 0.0, 1.5]] * 3), np.array([[0.0, 0.0, 1.0]] * 3)
    assert fit_floor(np.concatenate([walls, ceiling]), centers, ups, rng) is None
    assert fit_floor(np.zeros((2, 3)), centers, ups, rng) is None
