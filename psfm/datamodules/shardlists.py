"""Turn what a user types (folders, globs, brace patterns, ``pipe:`` commands) into shard URLs."""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import braceexpand

from psfm.datamodules.writer import MANIFEST_NAME, read_manifest
from psfm.errors import MissingPathError


@dataclass(frozen=True)
class ShardSet:
    """Resolved shard URLs and, when every source has a manifest, the total scene count.

    ``scene_counts`` maps each URL a manifest lists to its scene count (also when other sources have
    none), so the reader can tell a shard that lost scenes from one that never had them.
    """

    urls: tuple[str, ...]
    num_samples: int | None
    scene_counts: Mapping[str, int] = field(default_factory=dict)


def resolve_shards(sources: str | Sequence[str], key: str = "") -> ShardSet:
    """Expand shard sources; local files must exist (a clear error now beats an empty epoch later).

    Accepted forms: a folder written by ``ShardWriter`` (its manifest lists the shards), a path
    or glob (``data/*.tar``), a brace pattern (``data/shard-{000000..000009}.tar``), and ``pipe:``
    or URL sources, which are passed through unchecked. Several may be joined with ``::``.

    Raises:
        MissingPathError: a source that does not exist or holds no shards, named as ``key=source``
            (``datamodule.train=data/world/train does not exist (data/world holds only val/)``).
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
        named = f"{key}={source}" if key else source
        if source.startswith("pipe:") or "://" in source:
            urls.append(source)
            total = None
            continue
        path = Path(source)
        if path.is_dir():
            if not (path / MANIFEST_NAME).exists():
                raise MissingPathError(f"{named}: {_not_a_shard_folder(path)}")
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
        if missing == [source] and not glob.has_magic(source):
            raise MissingPathError(f"{named} does not exist{_what_is_there(path.parent)}")
        if missing == [source]:
            raise MissingPathError(f"{named} matches no file")
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MissingPathError(f"{named}: shard {missing[0]!r} does not exist{more}")
        urls.extend(expanded)
        total = None
    if not urls:
        raise MissingPathError(f"no shards found in {key or 'sources'}={list(sources)!r}")
    return ShardSet(tuple(urls), total, counts)


def _shard_folders(folder: Path) -> list[str]:
    """Sub-folders of ``folder`` that hold a manifest (the ``train/`` and ``val/`` of ``psfm world``)."""
    return sorted(f"{child.name}/" for child in folder.iterdir() if (child / MANIFEST_NAME).is_file())


def _what_is_there(parent: Path) -> str:
    """`` (data/world holds only val/)`` when a missing split's parent holds other splits, else what to pass."""
    splits = _shard_folders(parent) if parent.is_dir() else []
    if splits:
        return f" ({parent} holds only {', '.join(splits)})"
    return " (expected a shard folder, shard files or a glob)"


def _not_a_shard_folder(path: Path) -> str:
    """Why an existing folder without a manifest gives no shards, and what to pass instead."""
    if not any(path.iterdir()):
        return f"an empty folder, no {MANIFEST_NAME} or shards (`psfm world out=DIR` writes DIR/train and DIR/val)"
    splits = _shard_folders(path)
    if splits:
        return f"not a shard folder (no {MANIFEST_NAME}) but it holds {', '.join(splits)}: pass one of those"
    return f"folder has no {MANIFEST_NAME}; pass the shard files or a glob instead"
