"""The one shard writer: numbered tar shards, written atomically, listed in a resumable manifest.

Every producer (the procedural world, real-capture converters, the QA pipeline) writes through
``ShardWriter`` so the format has exactly one implementation. A shard appears under its final
name only once complete; ``manifest.json`` (also replaced atomically) lists the complete shards
with their sample counts, keys and SHA-256. Re-opening a directory resumes: keys already listed
are reported by ``done_keys`` so the producer skips them, and leftovers of a killed run are swept
(temporary files, and a shard renamed into place just before the kill but never listed). One
writer at a time: a second on the same folder is refused (``psfm.locks``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import tarfile
from pathlib import Path
from typing import Any

from psfm.datamodules.format import META_MEMBER, VIEW_MEMBER_PATTERN, ShardFormatError, check_key, parse_meta
from psfm.datamodules.sample import ShardSample
from psfm.io import AtomicFile, atomic_write_json, remove_stale_temporaries
from psfm.locks import FolderLock

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "psfm-shard-manifest"
MANIFEST_VERSION = 1


def _tar_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    """A tar header with fixed owner, mode and time, so equal samples give byte-identical shards."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def check_sample(sample: ShardSample, where: str) -> None:
    """Refuse samples the reader would reject: bad keys, unknown members, invalid or dangling metadata."""
    check_key(sample.key, where)
    for suffix in sample.members:
        if suffix != META_MEMBER and not VIEW_MEMBER_PATTERN.fullmatch(suffix):
            raise ShardFormatError(
                f"{where}: member {suffix!r} is not part of the format "
                "(allowed: meta.json, NNN.rgb.jpg|png, NNN.depth.png, NNN.mask.png)"
            )
    if META_MEMBER not in sample.members:
        raise ShardFormatError(f"{where}: sample has no meta.json")
    meta = parse_meta(sample.members[META_MEMBER], set(sample.members), where)
    if meta.scene_id != sample.key:
        raise ShardFormatError(f"{where}: meta.json scene_id {meta.scene_id!r} differs from the sample key")


class ShardWriter:
    """Write ``ShardSample`` s into ``<directory>/<prefix>-NNNNNN.tar`` shards of ``samples_per_shard``.

    Use as a context manager. Leaving the block normally closes the last (possibly short) shard;
    leaving it by an exception discards the open shard, whose scenes a resumed run regenerates, so
    a resumed run writes exactly the shards an uninterrupted one would.

    Args:
        directory: output folder (created), locked until the writer closes or its process ends: a
            second writer on it raises ``FolderBusyError`` before touching anything.
        samples_per_shard: scenes per tar.
        info: producer description stored in the manifest (e.g. the world config). Resuming with a
            different ``info`` is refused, since mixing two configurations in one dataset is a bug.
        prefix: shard file-name prefix.
    """

    def __init__(
        self,
        directory: str | Path,
        samples_per_shard: int = 64,
        info: dict[str, Any] | None = None,
        prefix: str = "shard",
    ):
        if samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.samples_per_shard = samples_per_shard
        self.prefix = prefix
        self._lock = FolderLock(self.directory)  # before the sweep below: it would delete a live writer's files
        try:
            self._open_folder(info)
        except BaseException:
            self._lock.release()
            raise
        self._open: tuple[AtomicFile, tarfile.TarFile, _HashingWriter] | None = None
        self._open_keys: list[str] = []
        self._open_name = ""

    def _open_folder(self, info: dict[str, Any] | None) -> None:
        """Sweep a killed run's leftovers and load (or start) the manifest."""
        for stale in remove_stale_temporaries(self.directory):
            log.warning("removed %s left by an interrupted writer", stale)
        # a JSON round trip so tuples and lists compare equal with what a manifest stores
        self.manifest = self._load_or_create_manifest(json.loads(json.dumps(info or {})))
        self.done_keys = {key for shard in self.manifest["shards"] for key in shard["keys"]}
        for orphan in self._unlisted_shards():
            # a kill between a shard's rename and the manifest update leaves a complete but unlisted
            # shard; its scenes are not in done_keys, so they are rewritten and a glob must not see them twice
            orphan.unlink()
            log.warning(
                "removed %s: complete but not in the manifest (the writer was killed before listing it)", orphan
            )

    # manifest ---------------------------------------------------------------------------------
    def _unlisted_shards(self) -> list[Path]:
        listed = {shard["name"] for shard in self.manifest["shards"]}
        pattern = re.compile(rf"{re.escape(self.prefix)}-[0-9]{{6}}\.tar")
        return sorted(
            path for path in self.directory.iterdir() if pattern.fullmatch(path.name) and path.name not in listed
        )

    def _load_or_create_manifest(self, info: dict[str, Any]) -> dict[str, Any]:
        path = self.directory / MANIFEST_NAME
        if not path.exists():
            return {
                "format": MANIFEST_FORMAT,
                "version": MANIFEST_VERSION,
                "info": info,
                "num_samples": 0,
                "shards": [],
            }
        manifest = read_manifest(self.directory)
        if manifest["info"] != info:
            raise ValueError(
                f"{path}: this folder holds shards made with a different configuration "
                f"({_first_difference(manifest['info'], info)}); write to a new folder or delete it first"
            )
        log.info(
            "resuming %s: %d scenes in %d shards already written",
            self.directory,
            manifest["num_samples"],
            len(manifest["shards"]),
        )
        return manifest

    def _save_manifest(self) -> None:
        self.manifest["num_samples"] = sum(shard["num_samples"] for shard in self.manifest["shards"])
        atomic_write_json(self.directory / MANIFEST_NAME, self.manifest)

    # writing ----------------------------------------------------------------------------------
    def write(self, sample: ShardSample) -> None:
        """Append one scene; refuses invalid samples and keys already written."""
        where = f"{self.directory}:{sample.key}"
        check_sample(sample, where)
        if sample.key in self.done_keys or sample.key in self._open_keys:
            raise ValueError(f"{where}: scene {sample.key!r} is already in this dataset")
        if self._open is None:
            self._start_shard()
        _, tar, _ = self._open
        for suffix in [META_MEMBER, *sorted(s for s in sample.members if s != META_MEMBER)]:
            tar.addfile(*_tar_member(f"{sample.key}.{suffix}", sample.members[suffix]))
        self._open_keys.append(sample.key)
        if len(self._open_keys) >= self.samples_per_shard:
            self._finish_shard()

    def _start_shard(self) -> None:
        index = max((int(s["name"][len(self.prefix) + 1 : -4]) for s in self.manifest["shards"]), default=-1) + 1
        self._open_name = f"{self.prefix}-{index:06d}.tar"
        atomic = AtomicFile(self.directory / self._open_name, "wb")
        handle = _HashingWriter(atomic.handle)
        self._open = (atomic, tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT), handle)  # noqa: SIM115
        self._open_keys = []

    def _finish_shard(self) -> None:
        atomic, tar, handle = self._open
        tar.close()
        atomic.commit()
        self.manifest["shards"].append(
            {
                "name": self._open_name,
                "num_samples": len(self._open_keys),
                "bytes": handle.size,
                "sha256": handle.hexdigest(),
                "keys": self._open_keys,
            }
        )
        self.done_keys.update(self._open_keys)
        self._save_manifest()
        self._open, self._open_keys = None, []

    def close(self) -> None:
        """Finish the open shard and the manifest, then unlock the folder."""
        try:
            if self._open is not None:
                self._finish_shard()
            elif not (self.directory / MANIFEST_NAME).exists():
                self._save_manifest()
        finally:
            self._lock.release()

    def abort(self) -> None:
        """Drop the open shard (its temporary file is deleted), then unlock; complete shards stay."""
        try:
            if self._open is not None:
                atomic, tar, _ = self._open
                tar.close()
                atomic.discard()
                self._open, self._open_keys = None, []
        finally:
            self._lock.release()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _HashingWriter:
    """File wrapper that hashes and counts the bytes written through it."""

    def __init__(self, handle):
        self._handle, self._hash, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def tell(self) -> int:
        return self.size


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Load and check ``manifest.json`` of a shard folder, with errors naming the file and field."""
    path = Path(directory) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no manifest; is this a psfm shard folder?") from None
    except json.JSONDecodeError as error:
        raise ShardFormatError(f"{path}: not valid JSON ({error})") from None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != MANIFEST_VERSION:
        raise ShardFormatError(f"{path}: not a {MANIFEST_FORMAT} v{MANIFEST_VERSION} manifest")
    for index, shard in enumerate(manifest.get("shards", [])):
        missing = {"name", "num_samples", "sha256", "keys"} - set(shard)
        if missing:
            raise ShardFormatError(f"{path}: shards[{index}] lacks {sorted(missing)}")
    return manifest


def verify_shards(directory: str | Path) -> list[str]:
    """Re-hash every shard the manifest lists; returns one line per problem (empty = all good)."""
    directory = Path(directory)
    problems = []
    for shard in read_manifest(directory)["shards"]:
        path = directory / shard["name"]
        if not path.exists():
            problems.append(f"{path}: listed in the manifest but missing")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != shard["sha256"]:
            problems.append(f"{path}: SHA-256 {digest[:12]}… differs from the manifest's {shard['sha256'][:12]}…")
    return problems


def _first_difference(old: dict, new: dict) -> str:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key}: {old.get(key)!r} in the manifest, {new.get(key)!r} now"
    return "no difference"
