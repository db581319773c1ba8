"""Corrupt shards the way disks, networks and hand edits do, for the loader's fault tests.

The writer refuses invalid scenes, so broken ones are made by rewriting a valid shard's tar.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path


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
