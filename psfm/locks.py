"""One writer per folder: an exclusive ``flock`` on ``<folder>/.lock``, held for the writer's life.

Two ``psfm world`` runs on one folder crashed each other (one swept the other's temporaries) or
silently overwrote each other's shards. A ``flock`` belongs to an open file description, so a
second open conflicts whether it comes from another process or from this one, and the kernel drops
the lock when its holder exits or is killed: a ``kill -9`` leaves no stale lock behind. The
``.lock`` file itself stays (deleting it would let a third writer lock a fresh file while the
second still holds the old one).

Forked children (the world's render workers) share the description and would keep the folder
locked after a killed parent; in each child the descriptor is pointed at ``/dev/null`` right after
the fork, which drops the child's share and leaves the parent's lock in place. A writer dropped
without ``close()`` unlocks when its lock object is garbage-collected (the file closes).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import weakref
from pathlib import Path
from typing import BinaryIO

from psfm.errors import UsageError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"

_held: weakref.WeakSet[FolderLock] = weakref.WeakSet()


class FolderBusyError(UsageError):
    """Another writer holds the folder's lock."""


class FolderLock:
    """Hold ``<folder>/.lock`` exclusively until ``release()``, garbage collection or the end of the process.

    Raises:
        FolderBusyError: another writer holds it (one line naming the folder).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._file: BinaryIO | None = open(self.folder / LOCK_NAME, "ab")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise FolderBusyError(
                f"{self.folder}: another writer holds this folder ({LOCK_NAME}); "
                "wait for it to finish, or write to another folder"
            ) from None
        except OSError as error:  # a filesystem without locks (some network mounts): write unguarded
            self.release()
            log.warning("%s: cannot lock (%s); nothing keeps a second writer out", self.folder, error)
        _held.add(self)

    def release(self) -> None:
        """Unlock (closing the file drops the flock); a second call does nothing."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _drop_in_forked_child(self) -> None:
        """Point the inherited descriptor at /dev/null: the child's share goes, the parent's lock stays.

        Never ``LOCK_UN`` (that would unlock the parent too), and never ``close`` (the file object still
        owns the number and would close whatever file reused it).
        """
        if self._file is not None:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, self._file.fileno())
            os.close(null)


def _drop_locks_in_forked_child() -> None:
    for lock in list(_held):
        with contextlib.suppress(OSError):
            lock._drop_in_forked_child()


os.register_at_fork(after_in_child=_drop_locks_in_forked_child)
