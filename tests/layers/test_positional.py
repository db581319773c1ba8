"""RoPE and PRoPE: attention scores depend on *relative* position and *relative* camera only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from psfm.geometry import backproject_pixels, intrinsics_from_fov, look_at
from psfm.layers.attention import attention, attention_backend
from psfm.layers.positional import PRoPE, RoPE2D, TokenGeometry, patch_positions


def test_patch_positions_are_row_major():
    assert patch_positions((2, 3)).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]


def test_rope_scores_depend_only_on_position_difference():
    rope = RoPE2D(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pos_q, pos_k):
        positions = torch.tensor([pos_q, pos_k], dtype=torch.float32)
        cos, sin = rope.angles(positions, torch.ones(2, dtype=torch.bool))
        geometry = TokenGeometry(cos, sin, 16)
        rotated_q = geometry.queries(torch.cat([q, k], dim=2))[:, :, 0]
        rotated_k = geometry.keys(torch.cat([q, k], dim=2))[:, :, 1]
        return float((rotated_q * rotated_k).sum())

    assert score([1, 2], [3, 5]) == pytest.approx(score([4, 0], [6, 3]), abs=1e-4)
    assert score([1, 2], [3, 5]) != pytest.approx(score([1, 2], [3, 6]), abs=1e-3)


def _rope_score(rope: RoPE2D, q: torch.Tensor, k: torch.Tensor, pos_q: list[int], pos_k: list[int]) -> float:
    """q · k after rotating q by its (row, column) and k by its own, through ``TokenGeometry``."""
    positions = torch.tensor([pos_q, pos_k], dtype=torch.float32)
    cos, sin = rope.angles(positions, torch.ones(2, dtype=torch.bool))
    geometry = TokenGeometry(cos, sin, rope.dims)
    both = torch.stack([q, k])[None, None]  # 1 1 2 dims
    return float((geometry.queries(both)[0, 0, 0] * geometry.keys(both)[0, 0, 1]).sum())


@pytest.mark.parametrize("seed", range(3))
def test_rope_scores_follow_the_row_and_the_column_separately(seed):
    """Moving the key down one row (same column) changes the score, and so does moving it one column.

    The older check above moves only the column, so a RoPE that dropped the row (or rotated both halves
    by the column) passed. Offsets (1, 2) and (2, 1) must differ too: rows and columns are not one axis.
    """
    rope, generator = RoPE2D(16), torch.Generator().manual_seed(seed)
    q, k = torch.randn(16, generator=generator), torch.randn(16, generator=generator)
    base = _rope_score(rope, q, k, [2, 3], [2, 3])

    for moved in ([3, 3], [5, 3], [2, 4], [2, 6]):  # rows only, then columns only
        assert abs(_rope_score(rope, q, k, [2, 3], moved) - base) > 1e-3, moved
    assert abs(_rope_score(rope, q, k, [0, 0], [1, 2]) - _rope_score(rope, q, k, [0, 0], [2, 1])) > 1e-3
    # and each axis on its own still depends only on the difference
    assert _rope_score(rope, q, k, [0, 3], [4, 3]) == pytest.approx(_rope_score(rope, q, k, [2, 1], [6, 1]), abs=1e-4)


def test_tokens_without_position_are_not_rotated():
    rope = RoPE2D(8)
    cos, sin = rope.angles(torch.tensor([[3.0, 4.0], [3.0, 4.0]]), torch.tensor([False, True]))
    x = torch.randn(1, 1, 2, 8)
    out = TokenGeometry(cos, sin, 8).queries(x)
    assert torch.equal(out[:, :, 0], x[:, :, 0]) and not torch.allclose(out[:, :, 1], x[:, :, 1])
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # rotations keep norms


def _camera(angle: float, height: float) -> torch.Tensor:
    eye = np.array([2 * math.cos(angle), 2 * math.sin(angle), height])
    return torch.tensor(look_at(eye, np.zeros(3)), dtype=torch.float32)


def test_prope_attention_is_invariant_to_the_world_frame():
    """Moving every camera by one rigid transform G leaves PRoPE attention outputs unchanged."""
    torch.manual_seed(0)
    intrinsics = torch.tensor(intrinsics_from_fov(32, 32, 60.0), dtype=torch.float32)
    cameras = torch.stack([_camera(0.3 * i, 1.0 + 0.2 * i) for i in range(5)])  # one camera per token
    q, k, v = (torch.randn(1, 2, 5, 16) for _ in range(3))
    shift = torch.tensor(look_at(np.array([0.5, -1.0, 0.3]), np.array([2.0, 1.0, 0.0]), roll_deg=10.0)).float()

    def run(cam_to_world):
        projection = PRoPE.projection(intrinsics.expand(5, 3, 3), cam_to_world, (32, 32))[None]
        geometry = TokenGeometry(cameras=projection, camera_dims=16)
        out = attention(geometry.queries(q), geometry.keys(k), geometry.values(v), "sdpa")
        return geometry.outputs(out)

    same = run(shift @ cameras)
    assert torch.allclose(run(cameras), same, atol=1e-4)
    moved_one = cameras.clone()
    moved_one[2] = shift @ moved_one[2]
    assert not torch.allclose(run(cameras), run(moved_one), atol=1e-3)


image_sides = st.integers(4, 96)


@settings(max_examples=40, deadline=None)
@given(
    size=st.tuples(image_sides, image_sides),
    focal=st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0)),
    principal=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    eye=st.tuples(*[st.floats(-3.0, 3.0)] * 3),
    roll=st.floats(-90.0, 90.0),
)
@example(size=(24, 64), focal=(1.0, 1.0), principal=(0.5, 0.5), eye=(1.0, -2.0, 1.5), roll=0.0)  # landscape
@example(size=(64, 24), focal=(1.0, 1.0), principal=(0.5, 0.5), eye=(1.0, -2.0, 1.5), roll=0.0)  # portrait
def test_prope_maps_image_corners_to_the_unit_square(size, focal, principal, eye, roll):
    """P takes a world point seen at pixel (u, v) at depth z to (u / W, v / H, 1) · z: corners land on 0 and 1.

    Independent of how P is assembled: the points are back-projected with ``psfm.geometry`` from the
    four image corners and the centre. Square images cannot tell 1/W from 1/H; these sizes can.
    """
    height, width = size
    intrinsics = np.array(
        [[focal[0] * width, 0.0, principal[0] * width], [0.0, focal[1] * height, principal[1] * height], [0, 0, 1]]
    )
    pose = look_at(np.array(eye), np.array([0.1, 0.2, -0.3]), roll_deg=roll)
    pixels = np.array([[0.0, 0.0], [width, 0.0], [0.0, height], [width, height], [width / 2, height / 2]])
    depth = np.array([0.5, 1.0, 2.0, 3.0, 1.5])
    points = backproject_pixels(pixels[:, 1] - 0.5, pixels[:, 0] - 0.5, depth, intrinsics, pose)  # corners, not centres

    projection = PRoPE.projection(torch.tensor(intrinsics), torch.tensor(pose), (height, width)).numpy()
    mapped = np.concatenate([points, np.ones((5, 1))], axis=1) @ projection.T

    expected = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:3], expected, atol=1e-6)
    np.testing.assert_allclose(mapped[:, 2:], np.stack([depth, np.ones(5)], axis=1), atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    size=st.tuples(image_sides, image_sides),
    stretch=st.tuples(st.floats(0.25, 4.0), st.floats(0.25, 4.0)).filter(lambda s: abs(s[0] - s[1]) > 0.05),
)
def test_prope_does_not_depend_on_resolution_even_when_only_one_axis_is_resized(size, stretch):
    """Resizing an image by (a, b) along (x, y) scales K's rows by a and b and (W, H) by a and b: P is unchanged.

    Unequal factors are the point: resizing both axes alike cannot tell a division by H from one by W.
    """
    height, width = size
    intrinsics = torch.tensor(intrinsics_from_fov(width, height, 60.0))
    resized = torch.diag(torch.tensor([stretch[0], stretch[1], 1.0], dtype=torch.float64)) @ intrinsics
    pose = torch.tensor(look_at(np.array([0.4, -1.0, 1.2]), np.zeros(3), roll_deg=20.0))

    before = PRoPE.projection(intrinsics, pose, (height, width))
    after = PRoPE.projection(resized, pose, (height * stretch[1], width * stretch[0]))

    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(size=st.tuples(image_sides, image_sides), seed=st.integers(0, 2**16))
def test_prope_attention_is_invariant_to_the_world_frame_on_non_square_images(size, seed):
    """The square-image invariance above, on any image shape, each token's camera with its own intrinsics."""
    height, width = size
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    intrinsics = torch.stack(
        [torch.tensor(intrinsics_from_fov(width, height, fov), dtype=torch.float32) for fov in rng.uniform(40, 100, 5)]
    )
    cameras = torch.stack([_camera(0.3 * i, 1.0 + 0.2 * i) for i in range(5)])
    q, k, v = (torch.randn(1, 2, 5, 16, generator=generator) for _ in range(3))
    shift = torch.tensor(look_at(rng.normal(0, 1, 3), rng.normal(0, 1, 3), roll_deg=rng.uniform(-45, 45))).float()

    def run(cam_to_world):
        projection = PRoPE.projection(intrinsics, cam_to_world, (height, width))[None]
        geometry = TokenGeometry(cameras=projection, camera_dims=16)
        return geometry.outputs(attention(geometry.queries(q), geometry.keys(k), geometry.values(v), "sdpa"))

    torch.testing.assert_close(run(shift @ cameras), run(cameras), atol=1e-4, rtol=1e-4)


def test_attention_backend_choice():
    assert attention_backend("auto", torch.device("cpu")) == "sdpa"
    with pytest.raises(RuntimeError, match="needs CUDA"):
        attention_backend("xformers", torch.device("cpu"))
    with pytest.raises(ValueError, match="one of"):
        attention_backend("flash", torch.device("cpu"))


def test_sdpa_matches_the_textbook_formula():
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v
    assert torch.allclose(attention(q, k, v, "sdpa"), expected, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_xformers_matches_sdpa_on_cuda():
    pytest.importorskip("xformers")
    q, k, v = (torch.randn(2, 4, 300, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    assert torch.allclose(attention(q, k, v, "xformers").float(), attention(q, k, v, "sdpa").float(), atol=2e-2)


def test_camera_blocks_follow_the_tokens_dtype():
    """The per-token matrices are float32; tokens in float64 (or bf16 under autocast) are transformed in their own
    dtype (mutation testing: the cast dropped survived, every test running float32)."""
    from psfm.layers.positional import _apply_blocks

    matrices = torch.eye(4).expand(1, 3, 4, 4)
    x = torch.randn(1, 2, 3, 8, dtype=torch.float64)
    out = _apply_blocks(matrices, x)
    assert out.dtype == torch.float64 and torch.equal(out, x)


def test_token_geometry_without_cameras_leaves_every_channel_to_the_rest():
    """``camera_dims`` reserves channels for PRoPE only when there are cameras: without, a geometry passes every
    channel on, RoPE's tail rotated and the rest untouched (mutation testing: the reserve kept without cameras,
    which dropped those channels, survived: the decoder sets ``camera_dims=0`` itself when it has none)."""
    from psfm.layers.positional import TokenGeometry

    x = torch.randn(2, 2, 5, 16)
    assert torch.equal(TokenGeometry(camera_dims=8).queries(x), x)
    rope = RoPE2D(8)
    cos, sin = rope.angles(patch_positions((1, 5)), torch.ones(5, dtype=torch.bool))
    rotated = TokenGeometry(cos, sin, rope.dims, camera_dims=8).queries(x)
    assert rotated.shape == x.shape and torch.equal(rotated[..., : 16 - rope.dims], x[..., : 16 - rope.dims])
