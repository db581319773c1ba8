"""``inspect_shards`` (what ``psfm shards`` prints) and ``why_no_batch`` (the line an empty epoch ends in)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from psfm.datamodules.codecs import encode_depth, encode_mask
from psfm.datamodules.format import dump_meta
from psfm.datamodules.inspect import inspect_shards, why_no_batch
from psfm.datamodules.sample import ShardSample, build_sample
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.writer import ShardWriter
from psfm.geometry import intrinsics_from_fov
from tests.conftest import write_scenes_with_views
from tests.datamodules.shard_surgery import rewrite_first_member


def scene(key: str, num_views: int, height: int, width: int, extras: bool = True, objects=None) -> ShardSample:
    """A scene of ``num_views`` (height, width) PNG views, unposed; depth and masks on every view when ``extras``."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(num_views)]
    depths = [np.ones((height, width), np.float32)] * num_views if extras else None
    masks = [np.ones((height, width), np.int64)] * num_views if extras else None
    intrinsics = [intrinsics_from_fov(width, height, 60.0)] * num_views
    return build_sample(
        key, images, intrinsics, None, "none", {"kind": "test"}, depths, masks, objects=objects, image_format="png"
    )


def extras_on_the_last_view_only(sample: ShardSample) -> ShardSample:
    """``sample`` with the depth maps and masks of every view but the last removed (the format allows it)."""
    record = json.loads(sample.members["meta.json"])
    members = dict(sample.members)
    for view in record["views"][:-1]:
        for kind in ("depth", "mask"):
            del members[view[kind]]
            view[kind] = None
    members["meta.json"] = dump_meta(record)
    return ShardSample(sample.key, members)


@pytest.fixture
def mixed_shards(tmp_path: Path) -> list[str]:
    """Four scenes in one shard: two 16x16 ones with depth and masks on every view (one of them with objects,
    one without a category), one whose depth and mask are on its last view only, and a 24x16 one without any."""
    objects = [{"category": "bed"}, {"category": "bed"}, {"note": "no category"}]
    with ShardWriter(tmp_path / "mixed", 4, info={"test": True}) as writer:
        writer.write(scene("full_a", 3, 16, 16, objects=objects))
        writer.write(scene("full_b", 3, 16, 16))
        writer.write(extras_on_the_last_view_only(scene("partial", 3, 16, 16)))
        writer.write(scene("bare", 2, 24, 16, extras=False))
    return resolve_shards(str(tmp_path / "mixed")).urls


def test_the_report_counts_sizes_views_objects_and_only_scenes_with_depth_and_masks_on_every_view(mixed_shards):
    """What ``psfm shards`` prints per dataset: several scenes of one size are counted as several, objects
    without a category are counted under '?', and a scene whose depth or masks cover only some views does not
    count as having them (the loader fills the others with zeros).

    (mutation testing: ``image_sizes[...] = 1``, ``obj.get('category')`` without the '?' default, and
    ``has_mask = ...`` / ``has_mask |= ...`` in place of ``&=`` survived.)
    """
    report = inspect_shards(mixed_shards)
    assert report.scenes == 4 and report.views == 11 and report.skipped == 0
    assert report.image_sizes == {"16x16": 3, "24x16": 1}
    assert report.views_per_scene == {3: 3, 2: 1}
    assert report.pose_sources == {"none": 4}
    assert report.categories == {"bed": 2, "?": 1}
    assert report.with_depth == 2 and report.with_mask == 2


def test_without_decoding_no_scene_is_claimed_to_have_depth_or_masks(mixed_shards):
    """``psfm shards verify=false`` reads metadata only: it must not report masks it never looked at.

    (mutation testing: ``(False, True)`` for ``(False, False)`` when ``decode`` is off survived.)
    """
    report = inspect_shards(mixed_shards, decode=False)
    assert report.scenes == 4 and report.image_sizes == {"16x16": 3, "24x16": 1}
    assert report.with_depth == 0 and report.with_mask == 0


def test_a_corrupt_image_is_skipped_and_named_by_shard_scene_and_member(scene_shards, fresh_skips, caplog):
    """The warning is how a person finds the broken file among thousands of shards.

    (mutation testing: dropping the ``where`` argument of ``decode_rgb``, which then says only 'image', survived.)
    """
    directory, keys = scene_shards
    shard = sorted(directory.glob("*.tar"))[0]
    rewrite_first_member(shard, ".001.rgb.png", lambda data: data[: len(data) // 3])
    with caplog.at_level("WARNING", logger="psfm.data"):
        report = inspect_shards(resolve_shards(str(directory)).urls)
    assert report.scenes == len(keys) - 1 and report.skip_reasons == {"decode": 1}
    assert f"skipped: {shard}:{keys[0]}.001.rgb.png: cannot decode image" in caplog.text


@pytest.mark.parametrize(("kind", "encode"), [("depth", encode_depth), ("mask", encode_mask)])
def test_a_depth_map_or_mask_of_another_size_than_its_image_is_skipped_and_named(
    scene_shards, fresh_skips, caplog, kind, encode
):
    """The loader would crop it against the wrong pixels; ``psfm shards`` must flag the scene, naming the member.

    (mutation testing: ``if name is None and ...`` in place of ``is not None``, which never checks a present
    depth map or mask, survived.)
    """
    directory, keys = scene_shards
    shard = sorted(directory.glob("*.tar"))[0]
    rewrite_first_member(shard, f".001.{kind}.png", lambda _: encode(np.ones((8, 8), np.int64)))
    with caplog.at_level("WARNING", logger="psfm.data"):
        report = inspect_shards(resolve_shards(str(directory)).urls)
    assert report.scenes == len(keys) - 1 and report.skip_reasons == {"decode": 1}
    assert f"{shard}:{keys[0]}.001.{kind}.png: size differs from the colour image" in caplog.text


def test_why_no_batch_names_the_reasons_when_no_shard_gave_a_scene(tmp_path):
    """Missing shards: the line lists the skips by reason, counted in the scenes the manifests list.

    (mutation testing: ``summarize(...) and '...'`` in place of ``or`` survived: no in-process test reached
    ``why_no_batch``.)
    """
    urls = [str(tmp_path / "shard-000000.tar"), str(tmp_path / "shard-000001.tar")]
    line = why_no_batch(urls, min_views=2, consumers=1, scene_counts={urls[0]: 3, urls[1]: 2})
    assert line.startswith(
        "none of its 2 shard(s) gave a readable scene (FileNotFoundError x5; last: FileNotFoundError"
    )
    assert "No such file or directory" in line


def test_why_no_batch_says_when_the_shards_hold_no_scene(tmp_path):
    """Readable but empty tars: no skip to list, so the line says what happened instead of an empty list.

    (mutation testing: the ``'they hold no scene'`` text changed, and ``and`` for ``or``, survived.)
    """
    empty = tmp_path / "empty.tar"
    tarfile.open(empty, "w").close()
    line = why_no_batch([str(empty)], min_views=2, consumers=1)
    assert line.startswith("none of its 1 shard(s) gave a readable scene (they hold no scene; last: ")


def test_why_no_batch_names_views_min_views_when_every_scene_has_too_few_views(tmp_path):
    write_scenes_with_views(tmp_path / "shards", [1, 2, 1])
    line = why_no_batch(resolve_shards(str(tmp_path / "shards")).urls, min_views=3, consumers=1)
    assert line == "all 3 of its scenes have fewer than views.min_views=3 views ({1: 2, 2: 1} views/scene)"


def test_why_no_batch_blames_too_few_shards_when_the_scenes_are_usable(scene_shards):
    directory, keys = scene_shards
    line = why_no_batch(resolve_shards(str(directory)).urls, min_views=2, consumers=8)
    assert line.startswith(
        "12 of its 12 scenes have views.min_views=2 views or more, yet none reached this loader: "
        "fewer shards (4) than ranks x workers (8)"
    )
