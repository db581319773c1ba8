"""Helpers for the probe tests: hand-built ``ProbeScenes``, random rotations, one CPU thread."""

from __future__ import annotations

import math

import pytest
import torch

from psfm.probes.scenes import ProbeScenes


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Probe-sized ops run faster on one thread than on two contended ones (restored after this package)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_rotations(count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, 3, 3] proper rotations, uniform (QR of a Gaussian matrix with the sign fixed)."""
    q, r = torch.linalg.qr(torch.randn(count, 3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    q[torch.linalg.det(q) < 0, :, 0] *= -1
    return q.float()


def rotation_z(degrees: float) -> torch.Tensor:
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose(rotation: torch.Tensor, translation) -> torch.Tensor:
    out = torch.eye(4)
    out[:3, :3], out[:3, 3] = rotation, torch.as_tensor(translation, dtype=torch.float32)
    return out


def make_scenes(
    cam_to_world: torch.Tensor,
    num_context: int,
    metas: list[dict] | None = None,
    pose_scale: torch.Tensor | None = None,
    size: int = 32,
) -> ProbeScenes:
    """``ProbeScenes`` around given poses [S, V, 4, 4]: black images, default intrinsics, no depth."""
    count, views = cam_to_world.shape[:2]
    intrinsics = torch.tensor([[size, 0.0, size / 2], [0.0, size, size / 2], [0.0, 0.0, 1.0]])
    return ProbeScenes(
        keys=[f"scene_{i:03d}" for i in range(count)],
        images=torch.zeros(count, views, 3, size, size, dtype=torch.uint8),
        intrinsics=intrinsics.expand(count, views, 3, 3).clone(),
        cam_to_world=cam_to_world,
        pose_scale=torch.ones(count) if pose_scale is None else pose_scale,
        depth=None,
        metas=metas if metas is not None else [{} for _ in range(count)],
        num_context=num_context,
        stored_size=(size, size),
        skipped={},
    )
