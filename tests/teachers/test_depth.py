"""The ``depth`` teacher: exact sub-patch layout, unknown pixels, clear errors, and use through the objective."""

from __future__ import annotations

import math

import pytest
import torch

from psfm.objectives.psfm import PSFMObjective
from psfm.teachers import build_teacher
from psfm.teachers.depth import DepthTeacher
from tests.conftest import make_batch


def test_sub_patches_are_row_major_log_depth() -> None:
    """A 4x6 depth map on a 2x3 grid with p=2: each pixel is one sub-patch, read back in (row, column) order."""
    depth = torch.arange(1, 25, dtype=torch.float32).reshape(1, 1, 4, 6)
    teacher = DepthTeacher(patch_size=2, unit=2.0, scale=3.0)

    targets = teacher.depth_features(depth, (2, 3))

    assert targets.shape == (1, 6, 4)
    # patch (row 1, column 2) covers pixel rows 2-3 and columns 4-5
    expected = torch.tensor([depth[0, 0, 2, 4], depth[0, 0, 2, 5], depth[0, 0, 3, 4], depth[0, 0, 3, 5]])
    torch.testing.assert_close(targets[0, 1 * 3 + 2], 3.0 * torch.log1p(expected / 2.0))


def test_sub_patches_average_their_pixels_on_non_square_images() -> None:
    """Portrait 8x4 map on a 2x1 grid, p=2: each sub-patch is the mean of its own 2x2 pixels."""
    depth = 1 + torch.rand(1, 1, 8, 4, generator=torch.Generator().manual_seed(0))
    targets = DepthTeacher(patch_size=2, scale=1.0).depth_features(depth, (2, 1))

    cells = depth.reshape(1, 1, 4, 2, 2, 2).mean(dim=(3, 5))[0, 0]  # 4 x 2 sub-patch means
    expected = torch.log1p(cells).reshape(2, 2, 1, 2).permute(0, 2, 1, 3).reshape(2, 4)
    torch.testing.assert_close(targets[0], expected)


def test_unknown_pixels_are_left_out_and_empty_sub_patches_fall_back() -> None:
    depth = torch.full((1, 1, 4, 4), 3.0)
    depth[0, 0, 2, 0] = 0.0  # one unknown pixel inside sub-patch (1, 0)
    depth[0, 0, 0:2, 2:4] = 0.0  # sub-patch (0, 1) entirely unknown
    teacher = DepthTeacher(patch_size=2, scale=1.0)

    targets = teacher.depth_features(depth, (1, 1))[0, 0]  # sub-patches: (0,0) (0,1) (1,0) (1,1)

    assert targets[2] == pytest.approx(math.log1p(3.0)), "the unknown pixel must not pull the mean toward 0"
    assert targets[1] == pytest.approx(math.log1p(3.0)), "an empty sub-patch takes its patch's mean"
    empty = teacher.depth_features(torch.zeros(1, 1, 4, 4), (1, 1))
    assert torch.equal(empty, torch.zeros_like(empty))


def test_batch_without_depth_is_a_clear_error() -> None:
    teacher = build_teacher("depth")
    with pytest.raises(ValueError, match="load_depth=true"):
        teacher.batch_targets(make_batch(with_depth=False), (2, 2))
    with pytest.raises(ValueError, match="reads ground-truth depth"):
        teacher(torch.rand(1, 3, 32, 32), (2, 2))
    with pytest.raises(ValueError, match="patch_size"):
        DepthTeacher(patch_size=0)
    with pytest.raises(ValueError, match="scale"):
        DepthTeacher(scale=0.0)


def test_objective_regresses_the_depth_of_the_views_it_covers() -> None:
    """Through ``PSFMObjective``: the loss is zero only for predictions equal to the views' own depth targets."""
    torch.manual_seed(0)
    batch = make_batch(batch_size=2, num_views=4, num_context=2, size=32)
    batch.depth = batch.depth * torch.arange(1, 5).view(1, 4, 1, 1, 1)  # views at clearly different depths
    teacher = DepthTeacher(patch_size=2)
    objective = PSFMObjective(
        dim=16, teacher_dims={"depth": teacher.dim}, decoder={"num_heads": 2}, target_norm="none", depth_probe=False
    )
    grid = (2, 2)
    truth = teacher.batch_targets(batch, grid)  # B V N 4

    class Perfect(torch.nn.Module):
        """A head that knows the truth: the stub decoder writes each covered view's index into its features."""

        def forward(self, features):  # B K N D
            return batch.gather_views(features[..., 0, 0].long(), truth)

    objective.heads["depth"] = Perfect()

    def synthesize(encoder, batch):
        index = objective.loss_index(batch)
        features = index[..., None, None].float().expand(-1, -1, 4, 16)
        return features, index, grid

    objective.synthesize = synthesize
    out = objective(None, batch, {"depth": teacher})

    assert float(out["loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(out["depth/target_loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(out["depth/ref_mean_context"]) > 0.01, "other views' depth is not this view's depth"
