"""RoPE and PRoPE: attention scores depend on *relative* position and *relative* camera only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from psfm.geometry import intrinsics_from_fov, look_at
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
