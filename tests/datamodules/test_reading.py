"""The tar reader loses no scene silently: short, missing and tampered shards are counted in scenes, by reason.

Each test reads one finite epoch through the training loader, as ``psfm pretrain`` does, from the 12-scene
fixture (4 shards of 3, with a manifest), and checks that every scene is either delivered or counted.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from psfm.datamodules import reading
from psfm.datamodules.datamodule import SceneDataModule
from psfm.datamodules.skips import SKIPS
from tests.datamodules.shard_surgery import cut_before_scene, finite_config, insert_member


def read_epoch(directory: Path) -> tuple[list[str], int, Counter]:
    """(scene keys delivered, skips the batches carried, skips by reason in this process) of one finite epoch."""
    config = finite_config(directory)
    SKIPS.drain()  # this process's counter may hold skips of earlier tests (``fresh_skips`` also resets its log limit)
    before = Counter(SKIPS.reasons)
    batches = list(SceneDataModule(config).train_dataloader())
    return [key for batch in batches for key in batch.scene_keys], sum(b.skipped for b in batches), SKIPS.since(before)


def test_a_shard_cut_at_a_header_boundary_counts_the_scenes_it_lost(scene_shards, fresh_skips, caplog):
    """Cut at a 512-byte block, a tar reads as a valid shorter one: two scenes vanished, exit 0, no word."""
    directory, keys = scene_shards
    shard = directory / "shard-000001.tar"  # scenes 3, 4, 5
    cut_before_scene(shard, 1)
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == [key for key in keys if key not in keys[4:6]]
    assert skipped == 2 and reasons == {"truncated_shard": 2}
    assert f"{shard}: read 1 of the 3 scenes its manifest lists; 2 lost" in caplog.text


def test_a_missing_shard_counts_every_scene_its_manifest_lists(scene_shards, fresh_skips, caplog):
    """A deleted shard of three scenes counted as one skip: the count was of events, not scenes."""
    directory, keys = scene_shards
    shard = directory / "shard-000002.tar"  # scenes 6, 7, 8
    shard.unlink()
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == [key for key in keys if key not in keys[6:9]]
    assert skipped == 3 and reasons == {"FileNotFoundError": 3}
    assert "skipped 3 scenes: FileNotFoundError" in caplog.text and str(shard) in caplog.text


def test_a_member_of_unknown_kind_fails_its_scene_naming_shard_scene_and_member(scene_shards, fresh_skips, caplog):
    """A ``.pickle`` beside the views rode along inside a scene that was trained on, unreported."""
    directory, keys = scene_shards
    shard = directory / "shard-000001.tar"
    insert_member(shard, ".meta.json", f"{keys[3]}.pickle", pickle.dumps({"not": "read"}))
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == [key for key in keys if key != keys[3]]
    assert skipped == 1 and reasons == {"unknown_member": 1}
    assert f"{shard}:{keys[3]}: member(s) outside the format, never read: '{keys[3]}.pickle'" in caplog.text


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("../evil", tarfile.REGTYPE),  # no dot: webdataset dropped it without a word
        ("../../etc/evil.meta.json", tarfile.REGTYPE),  # a path: was a sample of its own, the scene rode on
        ("evil", tarfile.SYMTYPE),  # a link: not a regular file, dropped without a word
    ],
)
def test_a_path_or_link_member_fails_the_scene_it_sits_in(scene_shards, fresh_skips, caplog, name, kind):
    directory, keys = scene_shards
    shard = directory / "shard-000001.tar"
    insert_member(shard, ".meta.json", name, b"EVIL", kind)
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == [key for key in keys if key != keys[3]]
    assert skipped == 1 and reasons == {"unsafe_member": 1}
    assert f"{shard}:{keys[3]}: member(s) outside the format, never read: {name!r}" in caplog.text


@pytest.mark.parametrize(
    ("name", "reason", "what"),
    [
        ("..evil.meta.json", "unsafe_member", "a path"),  # a leading '..' is a path even without a separator
        ("README", "unknown_member", "not named <scene key>.<kind>"),
        ("{key}.meta.json", "unknown_member", "a second copy of a member"),  # the scene's own name, twice
    ],
)
def test_each_foreign_member_is_named_with_what_it_is(scene_shards, fresh_skips, caplog, name, reason, what):
    """The skip message says what was wrong with each member, and the reason counts it as unsafe or unknown
    (mutation testing: the '..' rule, the key-less and duplicate records and their words survived)."""
    directory, keys = scene_shards
    shard, name = directory / "shard-000001.tar", name.format(key=keys[3])
    insert_member(shard, ".meta.json", name, b"{}")
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == [key for key in keys if key != keys[3]]
    assert skipped == 1 and reasons == {reason: 1}
    assert f"{shard}:{keys[3]}: member(s) outside the format, never read: {name!r} ({what})" in caplog.text


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.SYMTYPE, "a symlink"),
        (tarfile.LNKTYPE, "a hard link"),
        (tarfile.DIRTYPE, "a directory"),
        (tarfile.FIFOTYPE, "a special file"),  # a FIFO, like a device: no kind of its own in the message
    ],
)
def test_a_member_that_is_not_a_file_is_named_with_its_kind(scene_shards, fresh_skips, caplog, kind, what):
    """(mutation testing: the fallback words "special file" dropped survived.)"""
    directory, keys = scene_shards
    shard = directory / "shard-000001.tar"
    insert_member(shard, ".meta.json", "thing", b"", kind)
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == [key for key in keys if key != keys[3]]
    assert skipped == 1 and reasons == {"unsafe_member": 1}
    assert f"{shard}:{keys[3]}: member(s) outside the format, never read: 'thing' ({what}, not a file)" in caplog.text


def test_a_shard_of_foreign_members_only_loses_its_listed_scenes_as_unsafe(scene_shards, fresh_skips, caplog):
    """A tar holding no scene, only a path member, counts the scenes its manifest lists under the member's reason
    (mutation testing: the reason dropped, which counted them under the error's class name, survived)."""
    directory, keys = scene_shards
    shard = directory / "shard-000001.tar"
    with tarfile.open(shard, "w") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"EVIL"))
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == keys[:3] + keys[6:]
    assert skipped == 3 and reasons == {"unsafe_member": 3}
    assert f"{shard}: holds no scene, only members outside the format ('../evil')" in caplog.text


def test_the_bytes_of_a_path_member_are_never_read(scene_shards, monkeypatch):
    """Not read into any scene, and never extracted: the reader asks the tar for no member outside the format."""
    from psfm.datamodules.reading import ShardReader

    directory, keys = scene_shards
    shard = directory / "shard-000001.tar"
    insert_member(shard, ".meta.json", "../evil", b"EVIL")
    extracted = []
    extract = tarfile.TarFile.extractfile
    monkeypatch.setattr(
        tarfile.TarFile, "extractfile", lambda tar, info: extracted.append(info.name) or extract(tar, info)
    )
    scenes = list(ShardReader()(iter([{"url": str(shard)}])))
    assert [scene.key for scene in scenes] == keys[3:6]
    assert "../evil" not in extracted and len(extracted) == sum(len(scene.members) for scene in scenes)
    assert [member.name for member in scenes[0].foreign] == ["../evil"]
    assert not any(b"EVIL" in data for scene in scenes for data in scene.members.values())


def test_a_shard_that_fails_after_every_listed_scene_warns_and_counts_nothing(
    scene_shards, fresh_skips, caplog, monkeypatch
):
    """An error past the last listed scene (a broken end-of-archive, a pipe that exits non-zero) loses
    nothing: every scene is delivered, no skip is counted, and the warning says what was read.

    (mutation testing: the warning's arguments shifted, so it read "after 3 scenes" with no count
    compared, survived.)
    """
    directory, keys = scene_shards
    shard = directory / "shard-000003.tar"  # scenes 9, 10, 11
    real_group_scenes = reading.group_scenes

    def then_fail(url, stream):
        yield from real_group_scenes(url, stream)
        if url == str(shard):
            raise OSError(f"{url}: end of archive unreadable")

    monkeypatch.setattr(reading, "group_scenes", then_fail)
    with caplog.at_level("WARNING", logger="psfm.data"):
        delivered, skipped, reasons = read_epoch(directory)
    assert sorted(delivered) == keys and skipped == 0 and not reasons
    assert (
        f"OSError: {shard}: end of archive unreadable after 3 scenes; "
        "all 3 scenes its manifest lists were read, none lost" in caplog.text
    )


def test_every_shard_stream_is_closed_whether_read_to_the_end_or_left_early(scene_shards, monkeypatch):
    """A reader left open per shard leaks a file (or a pipe's process) for every shard of a long epoch
    (mutation testing: closing ``None`` instead of the stream survived)."""
    from webdataset.gopen import gopen

    directory, keys = scene_shards
    opened = []
    monkeypatch.setattr(reading, "gopen", lambda url: opened.append(gopen(url)) or opened[-1])
    urls = [{"url": str(path)} for path in sorted(directory.glob("*.tar"))]
    assert [scene.key for scene in reading.ShardReader()(iter(urls))] == keys
    assert len(opened) == 4 and all(stream.closed for stream in opened)
    scenes = reading.ShardReader()(iter(urls))
    next(scenes)
    scenes.close()  # a consumer that stops early (the epoch's last batch is full)
    assert len(opened) == 5 and opened[-1].closed
