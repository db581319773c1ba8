"""The webdataset stages of the scene loader, as module-level picklable callables.

    shards (epoch-seeded order, or resampled) -> split_by_node -> split_by_worker
    -> tar reader (lost scenes counted, ``reading``) -> parse + validate scene -> shuffle buffer -> SceneBatcher

Every random choice draws from a ``random.Random`` seeded by (seed, epoch, rank, worker, stage),
so a run's data order is a function of its config and epoch, not of process timing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import webdataset as wds
from torch.utils.data import IterableDataset
from webdataset.utils import pytorch_worker_info

from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.format import META_MEMBER, SceneMeta, ShardFormatError, check_key, parse_meta
from psfm.datamodules.reading import UNKNOWN, UNSAFE, ShardReader, TarScene
from psfm.datamodules.skips import DrawLimit, skip_and_count


def stage_rng(seed: int, epoch: int, stage: str) -> random.Random:
    """A generator unique to (seed, epoch, rank, worker, stage)."""
    rank, _, worker, _ = pytorch_worker_info()
    return random.Random(f"{seed}/{epoch}/{rank}/{worker}/{stage}")


class ShardList(IterableDataset):
    """Every shard once per epoch, in an order shuffled by (seed, epoch), the same on every rank."""

    def __init__(self, urls: Sequence[str], epoch: SharedEpoch, seed: int = 0, shuffle: bool = True):
        self.urls, self.epoch, self.seed, self.shuffle = list(urls), epoch, seed, shuffle

    def __iter__(self) -> Iterator[dict]:
        urls = list(self.urls)
        if self.shuffle:
            random.Random(f"{self.seed}/{self.epoch.get()}/shards").shuffle(urls)
        for url in urls:
            yield {"url": url}


class ResampledShards(IterableDataset):
    """An endless stream of shards drawn with replacement, independently per rank and worker.

    Pair with ``DataPipeline.with_epoch`` so every rank yields the same number of batches, and with a
    ``DrawLimit`` shared with the batching stage so data without a usable scene stops the stream.
    """

    def __init__(self, urls: Sequence[str], epoch: SharedEpoch, seed: int = 0, limit: DrawLimit | None = None):
        self.urls, self.epoch, self.seed, self.limit = list(urls), epoch, seed, limit

    def __iter__(self) -> Iterator[dict]:
        rng = stage_rng(self.seed, self.epoch.get(), "resample")
        if self.limit is not None:
            self.limit.start()
        while True:
            if self.limit is not None:
                self.limit.draw()
            yield {"url": rng.choice(self.urls)}


@dataclass
class ParsedScene:
    """A validated scene whose images are still encoded (decoding waits until views are chosen)."""

    key: str
    url: str
    meta: SceneMeta
    members: dict[str, bytes]


def parse_scene(sample: TarScene) -> ParsedScene:
    """Validate one scene as read from its tar; raises ``ShardFormatError`` naming shard, key and field.

    A member outside the format fails the scene: the format admits no other member (``.pickle`` files are
    how unpickling slips in), and a ``../`` name is a tampered or foreign tar, whatever else the scene holds.
    """
    where = f"{sample.url}:{sample.key}"
    check_key(sample.key, where)
    if sample.foreign:
        reason = UNSAFE if any(member.reason == UNSAFE for member in sample.foreign) else UNKNOWN
        listed = ", ".join(f"{member.name!r} ({member.what})" for member in sample.foreign[:5])
        raise ShardFormatError(f"{where}: member(s) outside the format, never read: {listed}", reason)
    members = sample.members
    if META_MEMBER not in members:
        raise ShardFormatError(f"{where}: sample has no meta.json (members: {sorted(members)})")
    meta = parse_meta(members[META_MEMBER], set(members), where)
    if meta.scene_id != sample.key:
        raise ShardFormatError(f"{where}: meta.json scene_id {meta.scene_id!r} differs from the sample key")
    return ParsedScene(sample.key, sample.url, meta, members)


def scene_reader(scene_counts: Mapping[str, int] | None = None) -> list:
    """The stages from shard URLs to validated scenes, each loss counted: the loader, ``psfm shards``,
    the probes and ``psfm qa`` all read through these, so a bad scene is reported the same way everywhere."""
    return [ShardReader(scene_counts), wds.map(parse_scene, handler=skip_and_count)]


class ShuffleBuffer:
    """Reservoir-style sample shuffle with a seeded, per-epoch generator."""

    def __init__(self, size: int, epoch: SharedEpoch, seed: int = 0):
        self.size, self.epoch, self.seed = size, epoch, seed

    def __call__(self, source: Iterator) -> Iterator:
        if self.size <= 1:
            yield from source
            return
        rng = stage_rng(self.seed, self.epoch.get(), "shuffle")
        buffer = []
        for item in source:
            if len(buffer) < self.size:
                buffer.append(item)
                continue
            index = rng.randrange(len(buffer))
            buffer[index], item = item, buffer[index]
            yield item
        rng.shuffle(buffer)
        yield from buffer
