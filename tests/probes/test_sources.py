"""Feature sources: every source gives the same ``ProbeFeatures`` layout, from the right views."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from psfm.encoders.inputs import depth_as_image
from psfm.export import FrozenSpatialEncoder
from psfm.probes.sources import BackboneMeanSource, ConstantSource, EncoderSource, ThumbnailSource
from psfm.training.config import BackboneConfig, EncoderConfig
from psfm.training.model import build_encoder
from tests.probes.conftest import make_scenes


def scenes_with_images(count: int = 3, num_views: int = 4, seed: int = 0):
    scenes = make_scenes(torch.eye(4).repeat(count, num_views, 1, 1), num_context=2)
    generator = torch.Generator().manual_seed(seed)
    scenes.images = torch.randint(0, 256, scenes.images.shape, generator=generator, dtype=torch.uint8)
    return scenes


@pytest.fixture(scope="module")
def encoder() -> FrozenSpatialEncoder:
    backbone = BackboneConfig(name="vit_test", img_size=32, overrides={"depth": 1, "embed_dim": 32})
    config = EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return FrozenSpatialEncoder(build_encoder(backbone, config), (32, 32))


def test_thumbnail_features_come_from_the_right_views_and_patches():
    """View v's patch (r, c) is filled with one grey level: its 4 x 4 thumbnail must hold that level."""
    scenes = scenes_with_images()
    levels = torch.arange(3 * 4 * 4).view(3, 4, 2, 2) * 5  # scene, view, patch row, patch col
    scenes.images = levels.repeat_interleave(16, 2).repeat_interleave(16, 3)[:, :, None].expand(-1, -1, 3, -1, -1)
    scenes.images = scenes.images.to(torch.uint8).contiguous()
    features = ThumbnailSource((32, 32), patch_size=16).features(scenes)
    assert features.grid == (2, 2) and not features.ordered and features.first_is_reference
    assert features.view_tokens.shape == (3, 2, 4, 48) and features.scene_tokens.shape == (3, 2, 192)
    expected = levels[:, :2].flatten(2).float() / 255  # context views only, patches row-major
    assert torch.allclose(features.view_tokens, expected[..., None].expand(-1, -1, -1, 48), atol=1e-6)
    thumbs = features.scene_tokens.view(3, 2, 3, 8, 8)
    assert torch.allclose(thumbs[..., 0, 0], levels[:, :2, 0, 0, None].float().expand(-1, -1, 3) / 255)  # context views
    subset = features.subset_tokens.view(3, 2, 3, 8, 8)[..., 7, 7]  # bottom-right of views C..2C-1
    assert torch.allclose(subset, levels[:, 2:, 1, 1, None].float().expand(-1, -1, 3) / 255)


def test_constant_source_is_the_same_for_every_scene():
    features = ConstantSource((32, 32), patch_size=16).features(scenes_with_images(count=5))
    assert features.scene_tokens.shape == (5, 1, 1) and features.view_tokens.shape == (5, 2, 4, 1)
    assert features.grid == (2, 2) and features.ordered and not features.first_is_reference
    for tokens in (features.scene_tokens, features.subset_tokens, features.view_tokens):
        assert not tokens.any()


def test_encoder_source_encodes_each_subset_on_its_own(encoder):
    scenes = scenes_with_images()
    features = EncoderSource(encoder, batch_size=2).features(scenes)
    assert features.ordered and not features.first_is_reference and features.grid == (2, 2)
    assert features.scene_tokens.shape == (3, 4, 32) and features.subset_tokens.shape == (3, 4, 32)
    assert features.view_tokens.shape == (3, 2, 4, 32)
    assert not torch.allclose(features.scene_tokens, features.subset_tokens)

    changed = scenes_with_images()
    changed.images[:, 2:] = 255 - changed.images[:, 2:]  # subset B only
    again = EncoderSource(encoder, batch_size=16).features(changed)
    assert torch.allclose(again.scene_tokens, features.scene_tokens, atol=1e-5)  # A never sees B (batching neither)
    assert torch.allclose(again.view_tokens, features.view_tokens, atol=1e-5)
    assert not torch.allclose(again.subset_tokens, features.subset_tokens, atol=1e-3)

    same = scenes_with_images()
    same.images[:, 2:] = same.images[:, :2]
    twins = EncoderSource(encoder).features(same)
    assert torch.allclose(twins.scene_tokens, twins.subset_tokens, atol=1e-5)


def test_backbone_mean_source_pools_each_context_view(encoder):
    scenes = scenes_with_images()
    features = BackboneMeanSource(encoder).features(scenes)
    assert not features.ordered and features.first_is_reference
    assert features.scene_tokens.shape == (3, 2, 32) and features.view_tokens.shape == (3, 2, 4, 32)
    assert torch.allclose(features.scene_tokens, features.view_tokens.mean(2), atol=1e-6)
    tokens = EncoderSource(encoder).features(scenes).view_tokens
    assert torch.allclose(features.view_tokens, tokens, atol=1e-6)  # the same backbone tokens as the encoder's
    swapped = scenes_with_images()
    swapped.images = torch.cat([swapped.images[:, 2:], swapped.images[:, :2]], 1)
    assert torch.allclose(BackboneMeanSource(encoder).features(swapped).subset_tokens, features.scene_tokens, atol=1e-5)


def test_encoder_source_takes_a_live_encoder_with_its_image_size(encoder):
    scenes = scenes_with_images()
    with pytest.raises(ValueError, match="image size"):
        EncoderSource(encoder.encoder)
    live = EncoderSource(encoder.encoder, (32, 32))
    assert live.image_size == (32, 32) == EncoderSource(encoder).image_size
    assert torch.allclose(live.features(scenes).scene_tokens, EncoderSource(encoder).features(scenes).scene_tokens)


@pytest.mark.parametrize("source", ["encoder", "backbone_mean", "thumbnail", "live"])
def test_depth_input_sources_read_the_views_depth_not_their_photos(encoder, source):
    """A depth-input encoder (and the thumbnail it is held to) sees ``depth_as_image`` of each view, nothing else."""
    depth_encoder = FrozenSpatialEncoder(encoder.encoder, (32, 32), input_kind="depth")
    build = {
        "encoder": lambda: EncoderSource(depth_encoder),
        "backbone_mean": lambda: BackboneMeanSource(depth_encoder),
        "thumbnail": lambda: ThumbnailSource((32, 32), patch_size=16, input_kind="depth"),
        "live": lambda: EncoderSource(encoder.encoder, (32, 32), input_kind="depth"),
    }[source]
    scenes = scenes_with_images()
    scenes.depth = 0.5 + 4 * torch.rand(3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    features = build().features(scenes)

    repainted = scenes_with_images(seed=5)
    repainted.depth = scenes.depth
    assert torch.allclose(build().features(repainted).scene_tokens, features.scene_tokens, atol=1e-6)
    deeper = scenes_with_images()
    deeper.depth = 2 * scenes.depth
    assert not torch.allclose(build().features(deeper).scene_tokens, features.scene_tokens, atol=1e-4)
    if source == "thumbnail":  # the thumbnail of a view is the thumbnail of its depth image
        expected = F.adaptive_avg_pool2d(depth_as_image(scenes.depth[:, :2, None]).flatten(0, 1), 8)
        torch.testing.assert_close(features.scene_tokens, expected.flatten(1).unflatten(0, (3, 2)))

    scenes.depth = None
    with pytest.raises(ValueError, match="depth"):
        build().features(scenes)


def test_frame_aware_subsets_come_from_the_right_views(encoder):
    """C = 2 of 4 views: shared-reference = views (0, 3), moved-reference = views (1, 0)."""
    scenes = scenes_with_images()
    features = EncoderSource(encoder).features(scenes)
    spatial = encoder.encoder
    for tokens, views in ((features.shared_reference_tokens, [0, 3]), (features.moved_reference_tokens, [1, 0])):
        expected = spatial.encode_tokens(spatial.encode_views(scenes.float_images(slice(None), views))).latents
        assert torch.allclose(tokens, expected, atol=1e-5)
    assert not torch.allclose(features.moved_reference_tokens, features.scene_tokens, atol=1e-3)  # the mark moved
    alone = spatial.encode_tokens(spatial.encode_views(scenes.float_images(slice(None), [0]))).latents
    assert torch.allclose(features.reference_tokens, alone, atol=1e-5)
    assert not torch.allclose(features.reference_tokens, features.scene_tokens, atol=1e-3)  # view 1 counted

    changed = scenes_with_images()
    changed.images[:, 2] = 255 - changed.images[:, 2]  # B's own reference view: no longer in the shared subset
    assert torch.allclose(
        EncoderSource(encoder).features(changed).shared_reference_tokens, features.shared_reference_tokens, atol=1e-5
    )

    thumbs = ThumbnailSource((32, 32), patch_size=16).features(scenes)
    every_view = ThumbnailSource((32, 32), patch_size=16).features(scenes_with_images(num_views=4))
    pooled = torch.cat([every_view.scene_tokens, every_view.subset_tokens], 1)  # S 2C D, views 0..3
    assert torch.allclose(thumbs.shared_reference_tokens, pooled[:, [0, 3]])
    assert torch.allclose(thumbs.moved_reference_tokens, pooled[:, [1, 0]])
    assert torch.allclose(thumbs.reference_tokens, pooled[:, [0]])
    backbone = BackboneMeanSource(encoder).features(scenes)
    per_view = torch.cat([backbone.scene_tokens, backbone.subset_tokens], 1)
    assert torch.allclose(backbone.shared_reference_tokens, per_view[:, [0, 3]])
    constant = ConstantSource((32, 32), patch_size=16).features(scenes)
    assert (
        constant.shared_reference_tokens.shape == constant.scene_tokens.shape
        and not constant.moved_reference_tokens.any()
        and constant.reference_tokens.shape == constant.scene_tokens.shape
    )


def test_frame_aware_subsets_are_skipped_where_nothing_reads_them(encoder, monkeypatch):
    """Train scenes (``frame_aware=False``) encode subsets A and B only: two encodings per batch, not five."""
    scenes = scenes_with_images()
    calls = []
    real = encoder.encoder.encode_views
    monkeypatch.setattr(encoder.encoder, "encode_views", lambda images: calls.append(1) or real(images))
    plain = EncoderSource(encoder, batch_size=16).features(scenes, frame_aware=False)
    assert len(calls) == 2 and plain.shared_reference_tokens is None and plain.moved_reference_tokens is None
    assert plain.reference_tokens is None
    assert EncoderSource(encoder, batch_size=16).features(scenes).reference_tokens is not None
    assert len(calls) == 7  # + shared, moved and the reference view alone
    for source in (ThumbnailSource((32, 32), patch_size=16), ConstantSource((32, 32), patch_size=16)):
        skipped = source.features(scenes, frame_aware=False)
        assert skipped.shared_reference_tokens is None and skipped.reference_tokens is None
