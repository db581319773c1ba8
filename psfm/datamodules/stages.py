"""The webdataset stages of the scene loader, as module-level picklable callables.

    shards (epoch-seeded order, or resampled) -> split_by_node -> split_by_worker
    -> tar reader (skips counted) -> parse + validate scene -> shuffle buffer -> SceneBatcher

Every random choice draws from a ``random.Random`` seeded by (seed, epoch, rank, worker, stage),
so a run's data order is a function of its config and epoch, not of process timing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch.utils.data import IterableDataset
from webdataset.utils import pytorch_worker_info

from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.format import META_MEMBER, SceneMeta, ShardFormatError, check_key, parse_meta
from psfm.datamodules.skips import DrawLimit


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


def parse_scene(sample: dict) -> ParsedScene:
    """Validate one grouped tar sample; raises ``ShardFormatError`` naming shard, key and field."""
    key, url = sample.get("__key__", "?"), sample.get("__url__", "?")
    where = f"{url}:{key}"
    check_key(key, where)
    members = {name: value for name, value in sample.items() if not name.startswith("__")}
    if META_MEMBER not in members:
        raise ShardFormatError(f"{where}: sample has no meta.json (members: {sorted(members)})")
    meta = parse_meta(members[META_MEMBER], set(members), where)
    if meta.scene_id != key:
        raise ShardFormatError(f"{where}: meta.json scene_id {meta.scene_id!r} differs from the sample key")
    return ParsedScene(key, url, meta, members)


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
