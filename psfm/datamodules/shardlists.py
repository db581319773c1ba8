"""Turn what a user types (folders, globs, brace patterns, ``pipe:`` commands) into shard URLs."""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import braceexpand

from psfm.datamodules.writer import MANIFEST_NAME, read_manifest


@dataclass(frozen=True)
class ShardSet:
    """Resolved shard URLs and, when every source has a manifest, the total scene count.

    ``scene_counts`` maps each URL a manifest lists to its scene count (also when other sources have
    none), so the reader can tell a shard that lost scenes from one that never had them.
    """

    urls: tuple[str, ...]
    num_samples: int | None
    scene_counts: Mapping[str, int] = field(default_factory=dict)


def resolve_shards(sources: str | Sequence[str]) -> ShardSet:
    """Expand shard sources; local files must exist (a clear error now beats an empty epoch later).

    Accepted forms: a folder written by ``ShardWriter`` (its manifest lists the shards), a path
    or glob (``data/*.tar``), a brace pattern (``data/shard-{000000..000009}.tar``), and ``pipe:``
    or URL sources, which are passed through unchecked. Several may be joined with ``::``.
    """
    if isinstance(sources, str):
        sources = sources.split("::")
    urls: list[str] = []
    counts: dict[str, int] = {}
    total: int | None = 0
    for source in sources:
        source = str(source).strip()
        if not source:
            continue
        if source.startswith("pipe:") or "://" in source:
            urls.append(source)
            total = None
            continue
        path = Path(source)
        if path.is_dir():
            if not (path / MANIFEST_NAME).exists():
                raise FileNotFoundError(
                    f"{path}: folder has no {MANIFEST_NAME}; pass the shard files or a glob instead"
                )
            manifest = read_manifest(path)
            listed = {str(path / shard["name"]): int(shard["num_samples"]) for shard in manifest["shards"]}
            urls.extend(listed)
            counts.update(listed)
            total = None if total is None else total + manifest["num_samples"]
            continue
        expanded = [
            match for pattern in braceexpand.braceexpand(source) for match in sorted(glob.glob(pattern)) or [pattern]
        ]
        missing = [p for p in expanded if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"shard {missing[0]!r} does not exist" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        urls.extend(expanded)
        total = None
    if not urls:
        raise ValueError(f"no shards found in {list(sources)!r}")
    return ShardSet(tuple(urls), total, counts)
