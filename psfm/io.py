"""Atomic file writes: a file is either absent or complete, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class AtomicFile:
    """A temporary sibling of ``path`` that becomes ``path`` on ``commit()`` and vanishes on ``discard()``.

    The temporary name starts with ``.`` and ends with ``.tmp`` so readers globbing ``*.tar`` never
    see it, and writers can sweep leftovers of a killed run.
    """

    def __init__(self, path: str | Path, mode: str = "wb"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, self.temp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.handle: IO = os.fdopen(descriptor, mode)

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.chmod(self.temp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(self.temp_name, self.path)

    def discard(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_name)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """``open()`` for writing whose result appears at ``path`` only if the block succeeds."""
    atomic = AtomicFile(path, mode)
    try:
        yield atomic.handle
    except BaseException:
        atomic.discard()
        raise
    atomic.commit()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | Path, record: Any) -> None:
    atomic_write_bytes(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def remove_stale_temporaries(directory: str | Path, of: str = "*") -> list[Path]:
    """Delete the temporaries ``AtomicFile`` s of files named like ``of`` (a glob) left when killed; returns them.

    Only ``AtomicFile`` 's names (``.<name>.<random>.tmp``) match, so other hidden or ``.tmp`` files stay.
    """
    removed = []
    for stale in sorted(Path(directory).glob(f".{of}.*.tmp")):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
