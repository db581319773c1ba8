"""Build the scene loader as one list of webdataset stages (usable without Lightning)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import webdataset as wds

from psfm.datamodules.batching import SceneBatcher
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.pose_noise import PoseNoise
from psfm.datamodules.skips import DrawLimit
from psfm.datamodules.stages import ResampledShards, ShardList, ShuffleBuffer, scene_reader
from psfm.datamodules.views import ViewSampling


@dataclass
class LoaderOptions:
    """Everything that shapes one split's stream of batches.

    Attributes:
        batch_size: scenes per batch (per rank).
        image_size: (H, W) every view is fitted to.
        views: per-batch view sampling and context/target split.
        resampled: draw shards with replacement forever (training at scale); each rank then yields
            ``batches_per_epoch`` batches. Otherwise every shard is read once per epoch, split
            disjointly over ranks and workers (evaluation, exact coverage).
        batches_per_epoch: per-rank batches per epoch in resampled mode.
        shuffle_buffer: scenes held for shuffling (1 = keep order).
        shuffle_shards: shuffle shard order per epoch (finite mode).
        crop: ``center`` or ``random`` crop when fitting views.
        load_depth, load_mask: also decode depth maps / instance masks.
        partial: emit the last, smaller batch of a worker's stream.
        pose_noise: noise on normalized poses of views 1..V-1 (training only), to mimic predicted poses.
        seed: root of every random choice in the stream.
    """

    batch_size: int = 4
    image_size: tuple[int, int] = (128, 128)
    views: ViewSampling = field(default_factory=ViewSampling)
    resampled: bool = False
    batches_per_epoch: int | None = None
    shuffle_buffer: int = 64
    shuffle_shards: bool = True
    crop: str = "center"
    load_depth: bool = False
    load_mask: bool = False
    partial: bool = True
    pose_noise: PoseNoise | None = None
    seed: int = 0


def build_pipeline(
    urls: Sequence[str],
    options: LoaderOptions,
    epoch: SharedEpoch,
    num_workers: int = 0,
    scene_counts: Mapping[str, int] | None = None,
) -> wds.DataPipeline:
    """The stage list; each stage is a module-level callable so worker processes can pickle it.

    ``scene_counts`` (url -> scenes its manifest lists, ``ShardSet.scene_counts``) lets the tar reader
    count the scenes a short or unreadable shard lost, rather than one skip per shard or none.
    """
    limit = None
    if options.resampled:
        if not options.batches_per_epoch:
            raise ValueError("resampled loading needs batches_per_epoch (how many batches each rank yields per epoch)")
        # readable data gives a batch within shuffle_buffer + batch_size draws; see DrawLimit
        limit = DrawLimit(max(100, 10 * (options.shuffle_buffer + options.batch_size)), _describe(urls))
        stages = [ResampledShards(urls, epoch, options.seed, limit)]
    else:
        stages = [ShardList(urls, epoch, options.seed, options.shuffle_shards), wds.split_by_node, wds.split_by_worker]
    stages += [
        *scene_reader(scene_counts),
        ShuffleBuffer(options.shuffle_buffer, epoch, options.seed),
        SceneBatcher(
            options.batch_size,
            options.views,
            options.image_size,
            epoch,
            options.seed,
            options.crop,
            options.load_depth,
            options.load_mask,
            options.partial,
            options.pose_noise,
            limit,
            carry_final_skips=not options.resampled,  # a finite epoch's last batch takes every skip out
        ),
    ]
    pipeline = wds.DataPipeline(*stages)
    if options.resampled:
        pipeline = pipeline.with_epoch(nbatches=math.ceil(options.batches_per_epoch / max(1, num_workers)))
    return pipeline


def _describe(urls: Sequence[str]) -> str:
    return f"{len(urls)} shard(s) ({urls[0]}{', ...' if len(urls) > 1 else ''})"
