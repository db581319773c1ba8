"""The scene loader: batch contract, view sampling, coverage, skip counting, epochs."""

from __future__ import annotations

import io
import math
import random
import re
import tarfile
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from psfm.datamodules import stages
from psfm.datamodules.batching import normalize_poses
from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.pipeline import LoaderOptions, build_pipeline
from psfm.datamodules.sample import build_sample
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.skips import MAX_LOGGED_PER_PROCESS, SKIPS, NoUsableScenesError, SkipCounter
from psfm.datamodules.stages import ResampledShards, ShuffleBuffer
from psfm.datamodules.views import ViewSampling
from psfm.datamodules.writer import ShardWriter
from psfm.geometry import intrinsics_from_fov, look_at
from psfm.types import MultiViewBatch
from tests.conftest import write_scenes_with_views
from tests.datamodules.shard_surgery import edit_first_meta, rewrite_first_member


def stream(urls, epoch: int = 0, **overrides) -> list[MultiViewBatch]:
    options = LoaderOptions(**{"batch_size": 4, "image_size": (16, 16), "shuffle_buffer": 1, **overrides})
    return list(build_pipeline(urls, options, SharedEpoch(epoch)))


def test_batch_contract(scene_shards):
    directory, keys = scene_shards
    views = ViewSampling(min_views=3, max_views=5, context_ratio=0.5)
    batches = stream(resolve_shards(str(directory)).urls, views=views, load_depth=True, load_mask=True)
    assert sorted(k for b in batches for k in b.scene_keys) == keys
    for batch in batches:
        b, v = batch.batch_size, batch.num_views
        assert 3 <= v <= 5
        assert batch.images.shape == (b, v, 3, 16, 16) and batch.images.dtype == torch.float32
        assert batch.images.min() >= 0.0 and batch.images.max() <= 1.0
        assert batch.intrinsics.shape == (b, v, 3, 3) and batch.cam_to_world.shape == (b, v, 4, 4)
        assert batch.depth.shape == (b, v, 1, 16, 16) and batch.instance.shape == (b, v, 1, 16, 16)
        context, target = batch.context_index, batch.target_index
        assert context.shape == (b, max(1, int(0.5 * v))) and (context[:, 0] == 0).all()
        assert torch.equal(torch.sort(torch.cat([context, target], 1)).values, torch.arange(v).expand(b, -1))
        # view 0 is the world frame; cameras spread to unit mean distance from it
        assert torch.allclose(batch.cam_to_world[:, 0], torch.eye(4).expand(b, 4, 4), atol=1e-5)
        spread = batch.cam_to_world[:, 1:, :3, 3].norm(dim=-1).mean(1)
        assert torch.allclose(spread, torch.ones(b), atol=1e-4)
        assert batch.has_pose.all() and (batch.pose_scale > 0).all()
        # depth is metric and follows the sampled view ids (the synthetic view i has depth 1 + i)
        assert torch.allclose(batch.depth[:, :, 0, 0, 0], 1.0 + batch.view_ids.float(), atol=1e-3)


@pytest.mark.parametrize("size", [(8, 12), (12, 8)])
def test_non_square_batches_are_rows_by_columns_with_intrinsics_to_match(scene_shards, size):
    """16 x 16 views fitted to (H, W) landscape or portrait: every per-pixel tensor is [..., H, W], and the
    principal point (the stored views' image centre) lands on the new image centre (W / 2, H / 2)."""
    directory, _ = scene_shards
    height, width = size
    batches = stream(resolve_shards(str(directory)).urls, image_size=size, load_depth=True, load_mask=True)
    assert batches
    for batch in batches:
        b, v = batch.batch_size, batch.num_views
        assert batch.images.shape == (b, v, 3, height, width)
        assert batch.depth.shape == batch.instance.shape == (b, v, 1, height, width)
        principal = batch.intrinsics[..., :2, 2]
        torch.testing.assert_close(principal, torch.tensor([width / 2, height / 2]).expand(b, v, 2))
        scale = max(height, width) / 16  # the view is scaled to cover (H, W), then cropped
        focal = batch.intrinsics[..., [0, 1], [0, 1]]
        torch.testing.assert_close(focal, torch.full((b, v, 2), scale * 16 / (2 * math.tan(math.radians(30)))))


@pytest.mark.parametrize("target_overlap", [0.0, 0.3])
def test_window_batches_come_in_capture_order_with_views_and_cameras_kept_together(scene_shards, target_overlap):
    directory, keys = scene_shards
    views = ViewSampling(4, 5, strategy="window", min_gap=1, max_gap=1, target_overlap=target_overlap)
    urls = resolve_shards(str(directory)).urls
    batches = stream(urls, views=views, load_depth=True)
    assert sorted(k for b in batches for k in b.scene_keys) == keys
    for batch in batches:
        b, v = batch.batch_size, batch.num_views
        ids = batch.view_ids
        assert torch.equal(ids, torch.sort(ids, dim=1).values), "views in capture order"
        if not target_overlap:  # consecutive frames (gap 1); covisible targets may be any frame of the span
            assert (ids.diff(dim=1) == 1).all()
        context, target = batch.context_index, batch.target_index
        assert context.shape == (b, max(1, int(0.5 * v))) and (context[:, 0] == 0).all()
        assert torch.equal(torch.sort(torch.cat([context, target], 1)).values, torch.arange(v).expand(b, -1))
        assert torch.allclose(batch.cam_to_world[:, 0], torch.eye(4).expand(b, 4, 4), atol=1e-5)
        assert torch.allclose(batch.depth[:, :, 0, 0, 0], 1.0 + ids.float(), atol=1e-3)  # depth follows its view
    # capture order is the batch order, not the split: context views other than the reference sit anywhere
    rows = [(row, list(range(len(row)))) for batch in batches for row in batch.context_index.tolist()]
    assert any(context != leading for context, leading in rows)
    assert [b.view_ids.tolist() for b in batches] == [
        b.view_ids.tolist() for b in stream(urls, views=views, load_depth=True)
    ]


def write_two_facing_groups(directory, num_scenes: int) -> None:
    """Scenes of 12 views 1 m up along x: views 0-5 look along +x, views 6-11 along -x (no overlap between)."""
    rng = np.random.default_rng(0)
    with ShardWriter(directory, 4, info={"test": True}) as writer:
        for index in range(num_scenes):
            eyes = [np.array([0.1 * view, 0.0, 1.0]) for view in range(12)]
            poses = [
                look_at(eye, eye + np.array([1.0 if view < 6 else -1.0, 0.0, 0.0])) for view, eye in enumerate(eyes)
            ]
            images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(12)]
            intrinsics = [intrinsics_from_fov(16, 16, 60.0)] * 12
            writer.write(build_sample(f"scene_{index:04d}", images, intrinsics, poses, "gt", {"kind": "test"}))


def test_the_loader_draws_targets_the_context_sees_when_target_overlap_is_set(tmp_path):
    """``views.target_overlap`` reaches the batcher with each scene's cameras: no target faces away from the
    context view; without it some do (mutation testing: the switch inverted, and the cameras dropped, survived)."""
    write_two_facing_groups(tmp_path, 8)
    urls = resolve_shards(str(tmp_path)).urls

    def groups(views: ViewSampling) -> list[tuple[bool, ...]]:
        """Per scene of every batch: does each target face the way the context view faces?"""
        batches = [stream(urls, epoch, views=views, batch_size=2) for epoch in range(4)]
        ids = [row for epoch in batches for batch in epoch for row in batch.view_ids.tolist()]
        return [tuple((target < 6) == (row[0] < 6) for target in row[1:]) for row in ids]

    covisible = groups(ViewSampling(4, 4, context_ratio=0.25, target_overlap=0.5))
    assert len(covisible) == 32 and all(all(row) for row in covisible)
    assert not all(all(row) for row in groups(ViewSampling(4, 4, context_ratio=0.25)))  # the test can fail


@pytest.mark.parametrize("overlap_from", ["context", "others"])
def test_target_overlap_decodes_each_depth_map_once(scene_shards, monkeypatch, overlap_from):
    """The reference view's depth, read to score covisibility, is reused by the decoder rather than decoded again."""
    import psfm.datamodules.batching as batching

    calls: list[str] = []
    real = batching.decode_depth
    monkeypatch.setattr(batching, "decode_depth", lambda data, where: calls.append(where) or real(data, where))
    views = ViewSampling(
        4, 5, strategy="window", min_gap=1, max_gap=1, target_overlap=0.3, target_overlap_from=overlap_from
    )
    batches = stream(resolve_shards(str(scene_shards[0])).urls, views=views, load_depth=True)

    assert len(calls) == sum(batch.num_views * batch.batch_size for batch in batches) == len(set(calls))


def test_overlap_scoring_reads_the_reference_depth_only_in_pose_units_and_only_where_it_is_known(
    scene_shards, monkeypatch
):
    """The reference view's median depth places the covisibility test points, so it is used only where depth
    and poses share units (``metric_scale`` not ``none``) and only from pixels with a depth; a view without
    one falls back to ``views.overlap_depth`` (mutation testing: the ``none`` test never matching, and the
    median of an empty map, NaN, survived)."""
    from psfm.datamodules.batching import SceneBatcher
    from psfm.datamodules.codecs import encode_depth
    from psfm.datamodules.reading import ShardReader
    from psfm.datamodules.stages import parse_scene

    url = resolve_shards(str(scene_shards[0])).urls[0]
    scene = parse_scene(next(iter(ShardReader()(iter([{"url": url}])))))
    given = []
    monkeypatch.setattr(
        ViewSampling, "select", lambda self, rng, available, n, cameras=None, depth=None: given.append(depth) or [0, 1]
    )
    batcher = SceneBatcher(1, ViewSampling(2, 2, target_overlap=0.3), (16, 16), SharedEpoch(0), load_depth=True)

    batcher.select(scene, 2, random.Random(0))
    assert scene.meta.metric_scale == "none" and given == [None]  # SfM units: a depth in metres would misplace
    scene.meta = replace(scene.meta, metric_scale="gt")
    batcher.select(scene, 2, random.Random(0))
    reference_depth = given[-1]
    assert [reference_depth(view) for view in range(3)] == pytest.approx([1.0, 2.0, 3.0])  # view i: 1 + i metres
    scene.members[scene.meta.views[1].depth] = encode_depth(np.zeros((16, 16), np.float32))
    assert reference_depth(1) is None


def test_normalized_poses_give_back_the_metric_ones():
    rng = np.random.default_rng(0)
    poses = np.stack([look_at(rng.normal(0, 3, 3), rng.normal(0, 1, 3), rng.uniform(-10, 10)) for _ in range(5)])
    normalized, scale = normalize_poses(poses)
    assert np.allclose(normalized[0], np.eye(4), atol=1e-9)
    assert np.isclose(np.linalg.norm(normalized[1:, :3, 3], axis=-1).mean(), 1.0)
    metric = normalized.copy()
    metric[:, :3, 3] *= scale
    assert np.allclose(poses[0] @ metric, poses, atol=1e-9)
    coincident, unit = normalize_poses(np.stack([poses[0]] * 3))
    assert unit == 1.0 and np.allclose(coincident, np.eye(4))


def test_views_never_exceed_what_a_scene_has(tmp_path):
    from tests.conftest import write_synthetic_shards

    write_synthetic_shards(tmp_path / "few", num_scenes=4, per_shard=4, num_views=3)
    batches = stream(resolve_shards(str(tmp_path / "few")).urls, views=ViewSampling(2, 8))
    assert all(b.num_views <= 3 for b in batches)
    for batch in batches:
        for ids in batch.view_ids.tolist():
            assert len(set(ids)) == len(ids)  # no view twice


def test_a_scene_with_fewer_views_lowers_v_for_its_batch_and_earlier_scenes_keep_a_prefix(tmp_path):
    """V is drawn per batch; a later 3-view scene lowers it to 3, and the scenes already chosen keep the first
    three views of their selection, each view with its own pixels and depth (synthetic view i has depth 1 + i).

    (mutation testing: ``reorder(None)`` in ``DecodedScene.truncate`` survived: no test lowered V mid-batch.)
    """
    options = {"batch_size": 4, "views": ViewSampling(2, 5), "shuffle_shards": False, "load_depth": True, "seed": 1}
    write_scenes_with_views(tmp_path / "long", [5, 5, 5, 5])
    write_scenes_with_views(tmp_path / "short", [5, 5, 5, 3])
    (full,) = stream(resolve_shards(str(tmp_path / "long")).urls, **options)
    (lowered,) = stream(resolve_shards(str(tmp_path / "short")).urls, **options)
    assert full.num_views == 4  # the draw this seed gives: more views than the short scene has
    assert lowered.num_views == 3 and lowered.scene_keys == full.scene_keys
    assert torch.equal(lowered.view_ids[:3], full.view_ids[:3, :3])
    assert torch.allclose(lowered.depth[:, :, 0, 0, 0], 1.0 + lowered.view_ids.float(), atol=1e-3)
    assert torch.equal(lowered.images[:3], full.images[:3, :3])


def test_an_endless_stream_of_missing_shards_stops_after_its_draw_limit_naming_the_shards(tmp_path, fresh_skips):
    """Resampled training over shards that all fail used to draw forever; it stops with one line that says
    how many draws, which shards (the first and an ellipsis for the rest) and what each draw lost.

    (mutation testing: ``len(urls) > 2`` in ``pipeline._describe``, which drops the ellipsis for two shards,
    survived.)
    """
    urls = [str(tmp_path / "shard-000000.tar"), str(tmp_path / "shard-000001.tar")]
    with pytest.raises(NoUsableScenesError) as raised:
        stream(urls, resampled=True, batches_per_epoch=1)  # draw limit max(100, 10 x (1 + 4)) = 100
    assert str(raised.value).startswith(
        f"no usable scene in 100 shard draws in a row from 2 shard(s) ({urls[0]}, ...): "
        "100 scenes skipped (FileNotFoundError x100); last: FileNotFoundError"
    )
    with pytest.raises(NoUsableScenesError, match=rf"from 1 shard\(s\) \({re.escape(urls[0])}\):"):
        stream(urls[:1], resampled=True, batches_per_epoch=1)
    fresh_skips.drain()  # the 200 skips counted here are this test's, not the next test's


def test_the_draw_limit_restarts_at_every_batch_so_a_long_epoch_over_mostly_missing_shards_runs(tmp_path, fresh_skips):
    """The limit counts fruitless draws *in a row*: an epoch that needs more draws in all than the limit,
    with a batch every few draws, runs to its end.

    (mutation testing: the batching stage never told of its batches, so the count ran over the whole
    epoch and stopped a readable stream at draw 100, survived.)
    """
    write_scenes_with_views(tmp_path / "good", [4, 4, 4])  # one shard of three scenes
    urls = [str(tmp_path / "good" / "shard-000000.tar")] + [str(tmp_path / f"gone-{i}.tar") for i in range(7)]
    batches = stream(urls, resampled=True, batches_per_epoch=40, batch_size=3)
    assert len(batches) == 40
    assert fresh_skips.reasons["FileNotFoundError"] > 100  # more fruitless draws in all than the limit
    fresh_skips.drain()


def test_same_seed_and_epoch_same_stream_other_epoch_other_order(scene_shards):
    directory, _ = scene_shards
    urls = resolve_shards(str(directory)).urls
    kwargs = {"views": ViewSampling(2, 6), "shuffle_buffer": 5, "crop": "random"}
    first, again, other = stream(urls, 0, **kwargs), stream(urls, 0, **kwargs), stream(urls, 1, **kwargs)
    assert [b.scene_keys for b in first] == [b.scene_keys for b in again]
    assert all(
        torch.equal(a.images, b.images) and torch.equal(a.view_ids, b.view_ids)
        for a, b in zip(first, again, strict=True)
    )
    assert [b.scene_keys for b in first] != [b.scene_keys for b in other]


def test_finite_two_workers_cover_every_scene_once(scene_shards):
    directory, keys = scene_shards
    config = DataModuleConfig(
        train=str(directory), val=str(directory), batch_size=2, num_workers=2, image_size=[16, 16]
    )
    config.views = ViewSampling(2, 3)
    loader = SceneDataModule(config).val_dataloader()
    seen = [key for batch in loader for key in batch.scene_keys]
    assert sorted(seen) == keys


def _signature(batch: MultiViewBatch) -> tuple:
    """What makes a batch itself: its scenes, their views and the pixels (crops included)."""
    return tuple(batch.scene_keys), tuple(map(tuple, batch.view_ids.tolist())), batch.images.sum().item()


def test_resampled_epochs_have_a_fixed_length_and_each_worker_its_own_stream(scene_shards):
    directory, keys = scene_shards
    config = DataModuleConfig(
        train=str(directory), batch_size=2, num_workers=2, image_size=[16, 16], samples_per_epoch=10, augment=False
    )
    config.views = ViewSampling(2, 3)
    loader = SceneDataModule(config).train_dataloader()
    epochs = []
    for epoch in (0, 1, 0):
        loader.set_epoch(epoch)
        epochs.append([_signature(batch) for batch in loader])
    for batches in epochs:
        assert len(batches) == 2 * 3  # ceil(10 / 2) = 5 batches per rank -> ceil(5 / 2) = 3 per worker
        assert all(len(scenes) == 2 and set(scenes) <= set(keys) for scenes, _, _ in batches)
        # the two workers draw shards independently: a generator that ignores the worker id gives every batch twice
        assert len(set(batches)) == len(batches)
    assert epochs[0] != epochs[1]  # a new epoch draws anew
    assert epochs[0] == epochs[2]  # and an epoch is a function of its number (exact resume replays it)


def test_every_stage_generator_differs_per_rank_and_worker(monkeypatch):
    """(rank, worker) pairs seed apart: the same draws on two workers would duplicate every resampled batch."""
    urls = [f"shard-{i}.tar" for i in range(50)]

    def draws(rank: int, worker: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Shard draws and shuffle order as the given worker of the given rank makes them."""
        monkeypatch.setattr(stages, "pytorch_worker_info", lambda: (rank, 2, worker, 2))
        shards = iter(ResampledShards(urls, SharedEpoch(0), seed=0))
        shuffled = ShuffleBuffer(8, SharedEpoch(0), seed=0)(iter(range(30)))
        return tuple(next(shards)["url"] for _ in range(20)), tuple(shuffled)

    pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
    streams = [draws(rank, worker) for rank, worker in pairs]
    assert len({shards for shards, _ in streams}) == 4 and len({order for _, order in streams}) == 4
    assert draws(1, 0) == streams[2]  # and each pair's stream is reproducible


def test_resampled_shard_draws_follow_the_seed():
    """Another ``seed`` draws other shards, the same seed the same (mutation testing: the seed dropped survived)."""

    def draws(seed: int) -> list[str]:
        shards = iter(ResampledShards([f"shard-{i}.tar" for i in range(50)], SharedEpoch(0), seed=seed))
        return [next(shards)["url"] for _ in range(20)]

    assert draws(0) == draws(0) and draws(0) != draws(1)


def test_the_loader_seed_reaches_the_resampled_shard_draws(scene_shards):
    """With no shuffle buffer the scene order is the shard draws' alone: another ``seed`` must give another one
    (mutation testing: ``build_pipeline`` handing the resampler ``None`` for the seed survived)."""
    urls = resolve_shards(str(scene_shards[0])).urls

    def scene_order(seed: int) -> list[str]:
        batches = stream(urls, seed=seed, batch_size=2, views=ViewSampling(2, 3), resampled=True, batches_per_epoch=8)
        return [key for batch in batches for key in batch.scene_keys]

    assert scene_order(0) == scene_order(0)
    assert scene_order(0) != scene_order(1) and scene_order(1) != scene_order(2)


def test_shuffle_buffer_order_follows_the_epoch():
    """Shuffled by (seed, epoch): another epoch reorders the scenes, the same epoch repeats its order."""

    def order(epoch: int, seed: int = 0) -> list[int]:
        return list(ShuffleBuffer(8, SharedEpoch(epoch), seed)(iter(range(40))))

    assert sorted(order(0)) == list(range(40))  # a permutation: nothing lost, nothing twice
    assert order(0) == order(0)
    assert order(0) != order(1) and order(1) != order(2)
    assert order(0) != order(0, seed=1)
    # the smallest buffer that shuffles holds two (mutation testing: `size <= 2` passing the stream through survived)
    pairwise = list(ShuffleBuffer(2, SharedEpoch(0), 0)(iter(range(40))))
    assert sorted(pairwise) == list(range(40)) and pairwise != list(range(40))


def test_skip_counter_drains_what_is_pending_and_keeps_the_total():
    counter = SkipCounter()
    counter.add("decode", "a")
    counter.add("too_few_views", "b")
    assert counter.drain() == 2
    assert counter.drain() == 0  # a drained skip is never reported again
    counter.add("decode", "c")
    assert counter.drain() == 1 and counter.total == 3 and counter.reasons == {"decode": 2, "too_few_views": 1}


def test_each_skipped_scene_is_reported_exactly_once(tmp_path):
    """Batches carry the skips since the previous batch; their sum is the number of scenes skipped.

    A counter that is never drained reports every skip again with each later batch.
    """
    views = [4, 1, 4, 4, 1, 4, 1, 4, 4, 4, 1, 4]  # four scenes below min_views, spread over the stream
    keys = write_scenes_with_views(tmp_path / "shards", views)
    SKIPS.drain()  # this process's counter may hold skips of earlier tests
    urls = resolve_shards(str(tmp_path / "shards")).urls
    batches = stream(urls, batch_size=2, views=ViewSampling(2, 3), shuffle_shards=False)
    delivered = [key for batch in batches for key in batch.scene_keys]
    assert delivered == [key for key, count in zip(keys, views, strict=True) if count >= 2]
    assert [batch.skipped for batch in batches] == [1, 1, 1, 1]  # one skip before each of the first four batches
    assert SKIPS.drain() == 0


def test_bad_samples_are_skipped_counted_and_named(scene_shards, fresh_skips, caplog):
    directory, keys = scene_shards
    shards = sorted(directory.glob("*.tar"))
    rewrite_first_member(shards[0], ".000.rgb.png", lambda data: data[: len(data) // 3])  # truncated image
    rewrite_first_member(shards[1], ".meta.json", lambda data: data.replace(b'"pose_source"', b'"pose_sourcee"'))
    shards[2].write_bytes(shards[2].read_bytes()[:1500])  # a tar cut mid-member
    views = ViewSampling(6, 6)  # every view is decoded, so the truncated image is always hit
    urls = [*map(str, shards), str(directory / "missing.tar")]
    before = Counter(fresh_skips.reasons)
    with caplog.at_level("WARNING", logger="psfm.data"):
        batches = stream(urls, views=views)
    delivered = [k for b in batches for k in b.scene_keys]
    skipped = sum(b.skipped for b in batches)
    assert len(delivered) == len(set(delivered))
    assert set(delivered) >= set(keys[9:])  # the untouched shard arrives whole
    assert len(delivered) <= len(keys) - 3 and skipped >= 4  # three broken scenes + the missing shard
    # each counted under its reason (mutation testing: the truncated image counted under None survived)
    assert fresh_skips.since(before)["decode"] == 1
    log = caplog.text
    assert "000.rgb.png" in log and "cannot decode image" in log
    assert "missing field 'pose_source'" in log
    assert "missing.tar" in log


def test_an_image_of_another_size_than_its_meta_is_skipped_naming_both_sizes(scene_shards, fresh_skips, caplog):
    """(mutation testing: the image's size printed with its channels survived.)"""
    from psfm.datamodules.codecs import encode_rgb

    directory, keys = scene_shards
    shard = sorted(directory.glob("*.tar"))[0]
    rewrite_first_member(shard, ".000.rgb.png", lambda _: encode_rgb(np.zeros((8, 12, 3), np.uint8), "png"))
    with caplog.at_level("WARNING", logger="psfm.data"):
        batches = stream([str(shard)], views=ViewSampling(6, 6))
    assert sorted(key for batch in batches for key in batch.scene_keys) == keys[1:3]
    assert f"{shard}:{keys[0]}.000.rgb.png: image is (8, 12), meta.json says (16, 16)" in caplog.text


def test_a_worker_counts_and_logs_its_own_skips_not_those_its_parent_had_pending(tmp_path, monkeypatch, caplog):
    """A forked worker copied its parent's counter: undrained skips were counted again in its first batch,
    and a parent past its log limit left every worker silent (the fault-injection check failed so in CI)."""
    write_scenes_with_views(tmp_path / "shards", [4, 1, 4, 4, 1, 4])  # two scenes below min_views
    monkeypatch.setattr(SKIPS, "pending", 7)
    monkeypatch.setattr(SKIPS, "events", MAX_LOGGED_PER_PROCESS + 5)
    config = DataModuleConfig(val=str(tmp_path / "shards"), batch_size=2, num_workers=1, image_size=[16, 16])
    config.views = ViewSampling(2, 3)
    loader = SceneDataModule(config).val_dataloader()
    # reset by a fork hook, not a worker_init_fn: Lightning's seed_everything(workers=True) installs its own there
    assert loader.worker_init_fn is None
    batches = list(loader)
    assert sum(len(batch.scene_keys) for batch in batches) == 4
    assert sum(batch.skipped for batch in batches) == 2
    assert SKIPS.pending == 7  # the parent's own tally is its own business
    spent = SkipCounter()
    spent.pending, spent.events = 3, MAX_LOGGED_PER_PROCESS + 5
    spent.start_process()  # what the fork hook runs in the worker: a fresh tally whose first skips are logged again
    with caplog.at_level("WARNING", logger="psfm.data"):
        spent.add("decode", "the first skip of a fresh process")
    assert spent.pending == 1 and "the first skip of a fresh process" in caplog.text


def test_skips_after_the_last_batch_of_a_finite_stream_travel_in_that_batch(tmp_path):
    """A scene skipped after the last full batch stayed in the worker's counter: no batch ever reported it."""
    write_scenes_with_views(tmp_path / "shards", [4, 4, 4, 4, 1, 1])  # the last two scenes below min_views
    SKIPS.drain()
    urls = resolve_shards(str(tmp_path / "shards")).urls
    batches = stream(urls, batch_size=2, views=ViewSampling(2, 3), shuffle_shards=False)
    assert [batch.skipped for batch in batches] == [0, 2]
    resampled = stream(urls, batch_size=2, views=ViewSampling(2, 3), resampled=True, batches_per_epoch=3)
    assert len(resampled) == 3  # an endless stream is not held back: it has no last batch


def _zero_poses(record: dict) -> None:
    for view in record["views"]:
        view["cam_to_world"] = [[0.0] * 4] * 4


def _scaled_rotation(record: dict) -> None:
    pose = np.array(record["views"][1]["cam_to_world"])
    pose[:3, :3] *= 2
    record["views"][1]["cam_to_world"] = pose.tolist()


def _zero_focal_length(record: dict) -> None:
    record["views"][1]["intrinsics"][0][0] = 0.0


def _nan_intrinsics(record: dict) -> None:
    record["views"][1]["intrinsics"][1][2] = float("nan")  # json.dumps writes NaN, which json.loads reads back


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_zero_poses, "'views[0].cam_to_world' is not a rigid"),  # crashed the loader with LinAlgError
        (_scaled_rotation, "'views[1].cam_to_world' is not a rigid"),  # trained on a non-rigid pose, silently
        (_zero_focal_length, "'views[1].intrinsics' has a non-positive focal length"),
        (_nan_intrinsics, "'views[1].intrinsics' holds NaN"),
    ],
)
def test_a_scene_with_an_impossible_camera_is_skipped_counted_and_named(
    scene_shards, fresh_skips, caplog, edit, fragment
):
    directory, keys = scene_shards
    shard = sorted(directory.glob("*.tar"))[0]
    bad = edit_first_meta(shard, edit)
    with caplog.at_level("WARNING", logger="psfm.data"):
        batches = stream(resolve_shards(str(directory)).urls, views=ViewSampling(6, 6))
    assert sorted(k for b in batches for k in b.scene_keys) == [key for key in keys if key != bad]
    assert sum(b.skipped for b in batches) == 1
    assert f"{shard}:{bad}: field {fragment}" in caplog.text


def test_path_like_keys_are_rejected(tmp_path, scene_shards):
    directory, _ = scene_shards
    shard = sorted(directory.glob("*.tar"))[0]
    evil = tmp_path / "evil.tar"
    with tarfile.open(shard) as source, tarfile.open(evil, "w") as target:
        for info in source.getmembers():
            data = source.extractfile(info).read()
            info.name = "../" + info.name
            target.addfile(info, io.BytesIO(data))
    batches = stream([str(evil)])
    assert not [k for b in batches for k in b.scene_keys]


def test_resolve_shards_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope-000.tar"):
        resolve_shards(str(tmp_path / "nope-000.tar"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest"):
        resolve_shards(str(tmp_path / "empty"))
    assert resolve_shards("pipe:cat x.tar").urls == ("pipe:cat x.tar",)
    # nothing named at all (an empty override): the key and what it held (mutation testing: no message survived)
    with pytest.raises(FileNotFoundError, match=re.escape("no shards found in datamodule.train=['', '']")):
        resolve_shards("::", key="datamodule.train")
    with pytest.raises(FileNotFoundError, match=re.escape("no shards found in sources=[]")):
        resolve_shards([])


def test_pipe_urls_stream(scene_shards):
    directory, keys = scene_shards
    urls = [f"pipe:cat {p}" for p in sorted(directory.glob("*.tar"))]
    assert sorted(k for b in stream(urls, views=ViewSampling(2, 2)) for k in b.scene_keys) == keys
