"""Codecs: metric depth, instance masks and colour images round-trip; broken bytes name the member."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from psfm.datamodules.codecs import (
    MAX_DEPTH_M,
    decode_depth,
    decode_mask,
    decode_rgb,
    encode_depth,
    encode_mask,
    encode_rgb,
)
from psfm.datamodules.format import ShardFormatError

WHERE = "shard-000003.tar:scene_0042.001.rgb.jpg"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def smooth_rgb(height: int = 16, width: int = 16) -> np.ndarray:
    """A gradient image: what JPEG compresses with little loss (random noise is its worst case)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 128)], -1).astype(np.uint8)


# depth -----------------------------------------------------------------------------------------


def test_depth_round_trips_within_half_a_millimetre(rng):
    depth = rng.uniform(0.01, 60.0, (16, 16))
    decoded = decode_depth(encode_depth(depth))
    assert decoded.shape == (16, 16) and decoded.dtype == np.float32
    assert np.abs(decoded - depth).max() <= 0.0005 + 1e-5
    assert (decoded > 0).all()


def test_depth_float32_input_and_the_largest_representable_depth():
    depth = np.array([[0.001, 1.2345], [MAX_DEPTH_M, 10.0]])
    decoded = decode_depth(encode_depth(depth.astype(np.float32)))
    assert np.abs(decoded[0] - depth[0]).max() <= 0.0005 + 1e-6 and decoded[1, 1] == pytest.approx(10.0)
    assert decode_depth(encode_depth(depth))[1, 0] == pytest.approx(MAX_DEPTH_M, abs=1e-6)


def test_unknown_and_out_of_range_depth_become_zero(rng):
    depth = rng.uniform(0.5, 5.0, (4, 5))
    invalid = [np.nan, -1.0, 0.0, 65.6, 1000.0, np.inf, -np.inf, 0.0004]
    depth[0, :5] = invalid[:5]
    depth[1, :3] = invalid[5:]
    decoded = decode_depth(encode_depth(depth))
    assert (decoded[0] == 0).all() and (decoded[1, :3] == 0).all()
    assert np.abs(decoded[1, 3:] - depth[1, 3:]).max() <= 0.0005 + 1e-6
    assert np.abs(decoded[2:] - depth[2:]).max() <= 0.0005 + 1e-6


def test_depth_png_is_16_bit_millimetres():
    with Image.open(io.BytesIO(encode_depth(np.full((3, 3), 2.5)))) as image:
        assert image.format == "PNG" and image.mode.startswith("I")
        assert np.asarray(image).max() == 2500


# masks -----------------------------------------------------------------------------------------


def _png_mode(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode


def test_mask_ids_below_256_round_trip_in_an_8_bit_png(rng):
    mask = rng.integers(0, 256, (16, 16))
    mask[0, 0] = 255
    data = encode_mask(mask)
    assert _png_mode(data) == "L"
    decoded = decode_mask(data)
    assert decoded.dtype == np.int64 and np.array_equal(decoded, mask)


@pytest.mark.parametrize("high", [256, 1000, 65535])
def test_mask_ids_beyond_255_round_trip_in_a_16_bit_png(rng, high):
    mask = rng.integers(0, high, (16, 16))
    mask[3, 4] = high
    data = encode_mask(mask)
    assert _png_mode(data) != "L"
    assert np.array_equal(decode_mask(data), mask)


@pytest.mark.parametrize("bad", [-1, 65536])
def test_mask_ids_outside_uint16_are_refused(bad):
    mask = np.zeros((4, 4), np.int64)
    mask[1, 1] = bad
    with pytest.raises(ValueError, match="instance ids"):
        encode_mask(mask)


# colour ----------------------------------------------------------------------------------------


def test_rgb_png_round_trips_exactly(rng):
    rgb = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    decoded = decode_rgb(encode_rgb(rgb, "png"))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, rgb)


def test_rgb_jpg_round_trips_approximately():
    rgb = smooth_rgb()
    data = encode_rgb(rgb, "jpg")
    assert data[:2] == b"\xff\xd8"
    decoded = decode_rgb(data)
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 3.0


def test_decode_rgb_converts_grayscale_to_three_channels():
    buffer = io.BytesIO()
    Image.fromarray(np.full((5, 4), 77, np.uint8)).save(buffer, format="PNG")
    decoded = decode_rgb(buffer.getvalue())
    assert decoded.shape == (5, 4, 3) and (decoded == 77).all()


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)],
    ids=["float", "gray", "rgba"],
)
def test_encode_rgb_refuses_non_rgb_uint8(bad):
    with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
        encode_rgb(bad)


def test_encode_rgb_refuses_unknown_formats():
    with pytest.raises(ValueError, match="'bmp'"):
        encode_rgb(np.zeros((4, 4, 3), np.uint8), "bmp")


# broken bytes ----------------------------------------------------------------------------------


def _broken_inputs() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    jpeg = encode_rgb(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "jpg")
    png = encode_rgb(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "png")
    return {
        "truncated_jpeg": jpeg[: len(jpeg) // 2],
        "truncated_png": png[: len(png) // 2],
        "garbage": rng.bytes(300),
        "empty": b"",
    }


@pytest.mark.parametrize("name", list(_broken_inputs()))
@pytest.mark.parametrize("decode", [decode_rgb, decode_depth, decode_mask], ids=["rgb", "depth", "mask"])
def test_broken_bytes_raise_format_error_naming_the_member(name, decode):
    with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: cannot decode image"):
        decode(_broken_inputs()[name], WHERE)


def test_colour_image_is_not_accepted_as_depth_or_mask(rng):
    data = encode_rgb(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "png")
    with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: depth PNG has mode RGB"):
        decode_depth(data, WHERE)
    with pytest.raises(ShardFormatError, match=rf"^{re.escape(WHERE)}: mask PNG has mode RGB"):
        decode_mask(data, WHERE)


# determinism -----------------------------------------------------------------------------------


def test_encoders_are_deterministic(rng):
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    depth = rng.uniform(0.1, 10.0, (16, 16))
    mask = rng.integers(0, 1000, (16, 16))
    for encode, array in [
        (lambda a: encode_rgb(a, "jpg"), rgb),
        (lambda a: encode_rgb(a, "png"), rgb),
        (lambda a: encode_rgb(a, "jpg", quality=50), rgb),
        (encode_depth, depth),
        (encode_mask, mask),
        (encode_mask, mask % 7),
    ]:
        assert encode(array) == encode(array.copy())
    assert encode_rgb(rgb, "jpg", quality=50) != encode_rgb(rgb, "jpg", quality=95)
