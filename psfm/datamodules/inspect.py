"""Read every scene of a shard set once: validate, decode, and summarize what is inside."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import webdataset as wds

from psfm.datamodules.codecs import decode_depth, decode_mask, decode_rgb
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.format import ShardFormatError
from psfm.datamodules.skips import SKIPS, summarize
from psfm.datamodules.stages import ParsedScene, ShardList, scene_reader


@dataclass
class ShardReport:
    """Counts a person checks before training on a dataset.

    ``scenes`` were read and decoded, ``skipped`` scenes were lost (by reason in ``skip_reasons``), and
    ``manifest_scenes`` is what the manifests list for these shards (None without one): every scene is
    one of the first two, so ``unaccounted`` is zero unless the reader has a silent loss again.
    """

    scenes: int = 0
    views: int = 0
    skipped: int = 0
    manifest_scenes: int | None = None
    skip_reasons: Counter = field(default_factory=Counter)
    views_per_scene: Counter = field(default_factory=Counter)
    image_sizes: Counter = field(default_factory=Counter)
    pose_sources: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    with_depth: int = 0
    with_mask: int = 0

    @property
    def unaccounted(self) -> int:
        """Manifest scenes neither read nor counted as skipped (negative: more read than listed)."""
        return 0 if self.manifest_scenes is None else self.manifest_scenes - self.scenes - self.skipped


def _decode_all(scene: ParsedScene) -> tuple[bool, bool]:
    where = f"{scene.url}:{scene.key}"
    has_depth = has_mask = True
    for view in scene.meta.views:
        rgb = decode_rgb(scene.members[view.image], f"{where}.{view.image}")
        if rgb.shape[:2] != scene.meta.image_size:
            raise ShardFormatError(
                f"{where}.{view.image}: image is {rgb.shape[:2]}, meta.json says {scene.meta.image_size}"
            )
        for name, decode in ((view.depth, decode_depth), (view.mask, decode_mask)):
            if name is not None and decode(scene.members[name], f"{where}.{name}").shape != rgb.shape[:2]:
                raise ShardFormatError(f"{where}.{name}: size differs from the colour image")
        has_depth &= view.depth is not None
        has_mask &= view.mask is not None
    return has_depth, has_mask


def inspect_shards(
    urls: Sequence[str], decode: bool = True, scene_counts: Mapping[str, int] | None = None
) -> ShardReport:
    """Stream ``urls`` in order; every invalid scene is skipped and counted by reason.

    ``scene_counts`` (``ShardSet.scene_counts``): scenes each shard's manifest lists, so scenes a short
    or missing shard lost are counted and the report can compare what it read with the manifest.
    """
    report = ShardReport()
    if scene_counts and all(url in scene_counts for url in urls):
        report.manifest_scenes = sum(scene_counts[url] for url in urls)
    before = Counter(SKIPS.reasons)
    pipeline = wds.DataPipeline(ShardList(urls, SharedEpoch(), shuffle=False), *scene_reader(scene_counts))
    for scene in pipeline:
        try:
            has_depth, has_mask = _decode_all(scene) if decode else (False, False)
        except ShardFormatError as error:
            SKIPS.add("decode", str(error))
            continue
        report.scenes += 1
        report.views += scene.meta.num_views
        report.views_per_scene[scene.meta.num_views] += 1
        size = scene.meta.image_size
        report.image_sizes["x".join(map(str, size)) if size else "no views"] += 1
        report.pose_sources[scene.meta.pose_source] += 1
        report.categories.update(obj.get("category", "?") for obj in scene.meta.objects or [])
        report.with_depth += has_depth
        report.with_mask += has_mask
    SKIPS.drain()
    report.skip_reasons = SKIPS.since(before)
    report.skipped = sum(report.skip_reasons.values())
    return report


def why_no_batch(
    urls: Sequence[str], min_views: int, consumers: int, scene_counts: Mapping[str, int] | None = None
) -> str:
    """One line saying why a finite epoch over ``urls`` gave no batch, from one read of every scene's meta.

    Only for the failure path (it reads everything once): a worker cannot tell, since it sees its share of
    the shards only, and its skip counts stay in its process when no batch carries them out.
    ``consumers`` is ranks x loader workers, among which finite mode splits the shards.
    """
    report = inspect_shards(urls, decode=False, scene_counts=scene_counts)
    if report.scenes == 0:
        reasons = summarize(report.skip_reasons) or "they hold no scene"
        return f"none of its {len(urls)} shard(s) gave a readable scene ({reasons}; last: {SKIPS.last})"
    usable = sum(count for views, count in report.views_per_scene.items() if views >= min_views)
    if usable == 0:
        views = dict(sorted(report.views_per_scene.items()))
        return (
            f"all {report.scenes} of its scenes have fewer than views.min_views={min_views} views ({views} views/scene)"
        )
    return (
        f"{usable} of its {report.scenes} scenes have views.min_views={min_views} views or more, yet none reached "
        f"this loader: fewer shards ({len(urls)}) than ranks x workers ({consumers}), or images that fail to "
        "decode (see the 'skipped:' warnings)"
    )
