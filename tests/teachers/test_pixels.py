"""The pixels teacher against an independent, loop-by-loop computation of MAE's norm_pix target."""

from __future__ import annotations

import math

import pytest
import torch

from psfm.encoders.backbones import Backbone
from psfm.teachers import build_teacher


def hand_norm_pix(image: torch.Tensor, patch_size: int) -> list[list[float]]:
    """One image [3, H, W] -> per patch (row-major) its values in (row, column, channel) order, normalized."""
    _, height, width = image.shape
    targets = []
    for top in range(0, height, patch_size):
        for left in range(0, width, patch_size):
            values = [
                float(image[channel, top + row, left + column])
                for row in range(patch_size)
                for column in range(patch_size)
                for channel in range(3)
            ]
            mean = sum(values) / len(values)
            variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
            targets.append([(value - mean) / math.sqrt(variance + 1e-6) for value in values])
    return targets


def test_pixels_match_hand_computation() -> None:
    image = torch.rand(1, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    teacher = build_teacher("pixels", patch_size=2)

    targets = teacher(image, (2, 3))

    assert teacher.dim == 12
    expected = torch.tensor([hand_norm_pix(image[0], 2)])
    torch.testing.assert_close(targets, expected, rtol=1e-5, atol=1e-5)


def test_pixels_dim_follows_the_student(student: Backbone, images: torch.Tensor) -> None:
    teacher = build_teacher("pixels", student)

    targets = teacher(images, (4, 4))

    assert teacher.dim == 3 * 16 * 16
    assert targets.shape == (2, 16, 768)
    torch.testing.assert_close(targets.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(targets.var(-1), torch.ones(2, 16), atol=1e-3, rtol=0)


def test_flat_patch_gives_zero_not_nan() -> None:
    teacher = build_teacher("pixels", patch_size=2)

    targets = teacher(torch.full((1, 3, 4, 4), 0.3), (2, 2))

    assert torch.isfinite(targets).all()
    torch.testing.assert_close(targets, torch.zeros(1, 4, 12), atol=1e-4, rtol=0)  # float rounding of the mean / 1e-3


def test_images_off_the_grid_are_resized_to_grid_times_patch() -> None:
    image = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(3))
    resized = torch.nn.functional.interpolate(image, size=(4, 6), mode="bilinear", antialias=True)
    teacher = build_teacher("pixels", patch_size=2)

    targets = teacher(image, (2, 3))

    expected = torch.tensor([hand_norm_pix(resized[0], 2)])
    torch.testing.assert_close(targets, expected, rtol=1e-5, atol=1e-5)


def test_pixels_needs_a_patch_size() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        build_teacher("pixels")


def test_raw_colour_pixels_keep_each_patch_as_it_is() -> None:
    """normalize=False: a 2x2 image on a 1x1 grid with p=2 gives its four RGB triples, row by row, as 4 (rgb - 0.5)."""
    image = torch.arange(12, dtype=torch.float32).view(1, 3, 2, 2) / 12
    raw = build_teacher("pixels", patch_size=2, normalize=False)(image, (1, 1))
    expected = (image[0].permute(1, 2, 0).reshape(1, 1, 12) - 0.5) * 4  # (row, column, channel)
    torch.testing.assert_close(raw, expected)
    normalized = build_teacher("pixels", patch_size=2)(image, (1, 1))
    assert not torch.allclose(normalized, raw)  # the default still normalizes (the test can fail)
