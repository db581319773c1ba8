"""Read tar shards into scenes, and account for every scene a shard's manifest says it holds.

    {"url"} -> open -> tar members -> members grouped by scene key -> ``TarScene``

This replaces webdataset's ``tarfile_to_samples``, which was silent in three ways:

* a tar cut at a 512-byte block boundary reads as a valid, shorter tar (Python's ``tarfile`` takes the
  missing header for the end of the archive), so the scenes past the cut vanished without a message;
* a shard that failed to open, or broke mid-way, counted as one skip whatever it held;
* a member whose name is no ``<key>.<suffix>`` (a bare ``../evil``) was dropped without a word, and one
  of an unknown kind (``<key>.pickle``) rode along inside its scene.

With a manifest, each shard's scenes read are compared with the count it lists, and the difference is
counted as skipped scenes. Members outside the format are never read; the scene they sit in is
skipped, naming them (``psfm.datamodules.stages.parse_scene``).
"""

from __future__ import annotations

import contextlib
import logging
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO

from webdataset.gopen import gopen

from psfm.datamodules.format import KEY_PATTERN, META_MEMBER, VIEW_MEMBER_PATTERN, ShardFormatError
from psfm.datamodules.skips import SKIPS, reason_of

log = logging.getLogger("psfm.data")

UNSAFE = "unsafe_member"  # a path, link or device: could point outside the shard
UNKNOWN = "unknown_member"  # a plain file of a kind the format does not have
TRUNCATED = "truncated_shard"


@dataclass
class ForeignMember:
    """A tar member that is not part of the format; only its name is kept, its bytes are never read."""

    name: str
    reason: str  # UNSAFE or UNKNOWN
    what: str  # for the message: "a symlink", "a path", "not a scene member"


@dataclass
class TarScene:
    """One scene's members as the tar holds them (suffix -> bytes), before validation."""

    key: str
    url: str
    members: dict[str, bytes] = field(default_factory=dict)
    foreign: list[ForeignMember] = field(default_factory=list)


def classify_member(info: tarfile.TarInfo) -> tuple[str | None, str | None, ForeignMember | None]:
    """(scene key, member suffix, problem) of a tar member.

    A key comes with every name of the form ``<key>.<suffix>``, so an unknown suffix is charged to its own
    scene; the problem is None only for the format's suffixes (``meta.json``, ``NNN.rgb.jpg``...).
    """
    name = info.name
    if not info.isreg():
        return None, None, ForeignMember(name, UNSAFE, f"a {_kind(info)}, not a file")
    if "/" in name or "\\" in name or name.startswith(".."):
        return None, None, ForeignMember(name, UNSAFE, "a path")
    key, dot, suffix = name.partition(".")
    if not dot or not KEY_PATTERN.fullmatch(key):
        return None, None, ForeignMember(name, UNKNOWN, "not named <scene key>.<kind>")
    suffix = suffix.lower()  # as webdataset did, so shards it read group the same
    if suffix != META_MEMBER and not VIEW_MEMBER_PATTERN.fullmatch(suffix):
        return key, suffix, ForeignMember(name, UNKNOWN, "a kind the format does not have")
    return key, suffix, None


def _kind(info: tarfile.TarInfo) -> str:
    kinds = ((info.issym, "symlink"), (info.islnk, "hard link"), (info.isdir, "directory"))
    return next((kind for test, kind in kinds if test()), "special file")


def group_scenes(url: str, stream: IO[bytes]) -> Iterator[TarScene]:
    """The scenes of one tar stream, members grouped by key in the order the writer puts them.

    A member without a key of its own (``../evil``) belongs to the scene being read when it appears
    (the first scene, if none yet), so that scene is skipped rather than the member ignored.
    """
    scene: TarScene | None = None
    homeless: list[ForeignMember] = []
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for info in tar:
            tar.members = []  # stream mode keeps every header otherwise
            key, suffix, problem = classify_member(info)
            if key is None:
                (scene.foreign if scene is not None else homeless).append(problem)
                continue
            if scene is None or key != scene.key:
                if scene is not None:
                    yield scene
                scene, homeless = TarScene(key, url, foreign=homeless), []
            if problem is not None:
                scene.foreign.append(problem)
            elif suffix in scene.members:
                scene.foreign.append(ForeignMember(info.name, UNKNOWN, "a second copy of a member"))
            else:
                scene.members[suffix] = tar.extractfile(info).read()
    if scene is not None:
        yield scene
    elif homeless:
        names = ", ".join(repr(member.name) for member in homeless[:3])
        raise ShardFormatError(f"{url}: holds no scene, only members outside the format ({names})", homeless[0].reason)


class ShardReader:
    """webdataset stage: ``{"url"}`` stream -> ``TarScene`` stream, every lost scene counted in ``SKIPS``.

    Args:
        scene_counts: url -> scenes its manifest lists. A shard that yields fewer (cut at a block
            boundary, or broken mid-way), or none (missing, unreadable), has the difference counted as
            skipped; without a count, a broken shard counts as one skip, as it is all that is known.
    """

    def __init__(self, scene_counts: Mapping[str, int] | None = None):
        self.scene_counts = dict(scene_counts or {})

    def __call__(self, source: Iterator[dict]) -> Iterator[TarScene]:
        for shard in source:
            yield from self.read(shard["url"])

    def read(self, url: str) -> Iterator[TarScene]:
        expected = self.scene_counts.get(url)
        read = 0
        stream = None
        try:
            stream = gopen(url)
            for scene in group_scenes(url, stream):
                read += 1
                yield scene
        except Exception as error:  # a shard that cannot be read is skipped and counted, never fatal
            if expected is not None and read >= expected:  # every listed scene arrived: nothing to count
                log.warning(
                    "%s; all %d scenes its manifest lists were read, none lost", _lost(url, error, read, None), expected
                )
            else:
                SKIPS.add(
                    reason_of(error), _lost(url, error, read, expected), scenes=expected - read if expected else 1
                )
            return
        finally:
            _close(stream)
        if expected is not None and read < expected:
            message = (
                f"{url}: read {read} of the {expected} scenes its manifest lists; {expected - read} lost "
                "(a tar cut at a 512-byte block boundary reads as a shorter, valid tar)"
            )
            SKIPS.add(TRUNCATED, message, scenes=expected - read)
        elif expected is not None and read > expected:
            log.warning("%s: read %d scenes, its manifest lists %d (was the shard replaced?)", url, read, expected)


def _lost(url: str, error: Exception, read: int, expected: int | None) -> str:
    message = str(error) or repr(error)
    if url not in message:
        message = f"{url}: {message}"
    lost = f"; {expected - read} of the {expected} scenes its manifest lists lost" if expected is not None else ""
    return f"{type(error).__name__}: {message}" + (f" after {read} scenes" if read else "") + lost


def _close(stream) -> None:
    """Close quietly: a pipe stopped early exits non-zero, which is not the shard's fault."""
    if stream is not None:
        with contextlib.suppress(Exception):
            stream.close()
