"""Corrupt shards the way disks, networks and hand edits do, for the loader's fault tests.

The writer refuses invalid scenes, so broken ones are made by rewriting a valid shard's tar.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

from psfm.datamodules.datamodule import DataModuleConfig
from psfm.datamodules.views import ViewSampling


def rewrite_first_member(shard: Path, member_suffix: str, transform: Callable[[bytes], bytes]) -> None:
    """Rewrite the first member whose name ends with ``member_suffix``; the rest of the tar is kept as is."""
    with tarfile.open(shard) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    done = False
    with tarfile.open(shard, "w") as tar:
        for info, data in members:
            if not done and info.name.endswith(member_suffix):
                data, done = transform(data), True
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def edit_first_meta(shard: Path, edit: Callable[[dict], None]) -> str:
    """Apply ``edit`` to the decoded ``meta.json`` of the shard's first scene; returns that scene's key."""
    edited = {}

    def transform(data: bytes) -> bytes:
        record = json.loads(data)
        edit(record)
        edited["key"] = record["scene_id"]
        return json.dumps(record).encode()  # NaN is written as NaN, which json.loads reads back

    rewrite_first_member(shard, ".meta.json", transform)
    return edited["key"]


def _members(shard: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(shard) as tar:
        return [(info, tar.extractfile(info).read()) for info in tar.getmembers()]


def cut_before_scene(shard: Path, scene_index: int) -> None:
    """Truncate the tar at the header of scene ``scene_index``'s first member: a 512-byte block boundary,
    where the cut tar still reads as a valid one holding only the scenes before."""
    with tarfile.open(shard) as tar:
        firsts = {}
        for info in tar.getmembers():
            firsts.setdefault(info.name.split(".", 1)[0], info.offset)
    offset = list(firsts.values())[scene_index]
    shard.write_bytes(shard.read_bytes()[:offset])


def insert_member(shard: Path, after_suffix: str, name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> None:
    """Add member ``name`` right after the first member whose name ends with ``after_suffix``."""
    members = _members(shard)
    with tarfile.open(shard, "w") as tar:
        inserted = False
        for info, content in members:
            tar.addfile(info, io.BytesIO(content))
            if not inserted and info.name.endswith(after_suffix):
                extra = tarfile.TarInfo(name)
                extra.type, extra.size = kind, len(data) if kind == tarfile.REGTYPE else 0
                if kind == tarfile.SYMTYPE:
                    extra.linkname = "/etc/passwd"
                tar.addfile(extra, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
                inserted = True


def finite_config(directory: Path, batch_size: int = 4, max_views: int = 4, **overrides) -> DataModuleConfig:
    """The tiny finite-mode loader the shard tests stream: 16 px, 2..max_views views, no jitter, no workers."""
    options = {"num_workers": 0, "image_size": [16, 16], "resampled": False, "augment": False, **overrides}
    return DataModuleConfig(
        train=str(directory), val=None, batch_size=batch_size, views=ViewSampling(2, max_views), **options
    )
