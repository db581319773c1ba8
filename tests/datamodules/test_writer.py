"""ShardWriter: atomic numbered shards, a resumable manifest, refusals of bad samples, byte-identical output."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from psfm.datamodules.format import ShardFormatError, dump_meta
from psfm.datamodules.sample import ShardSample
from psfm.datamodules.writer import ShardWriter, read_manifest, verify_shards
from psfm.errors import UsageError
from psfm.locks import LOCK_NAME
from tests.conftest import synthetic_scene

SIZE = 16
NUM_VIEWS = 2
INFO = {"generator": "test", "seed": 0}


def make_samples(count: int, start: int = 0, seed: int = 0) -> list[ShardSample]:
    """``count`` scenes keyed s000.. with 2 JPEG views of 16x16, depth and masks."""
    rng = np.random.default_rng(seed)
    return [synthetic_scene(f"s{i:03d}", rng, NUM_VIEWS, SIZE, image_format="jpg") for i in range(start, start + count)]


def write_all(directory: Path, samples: list[ShardSample], per_shard: int = 4, info=INFO) -> None:
    with ShardWriter(directory, per_shard, info=info) as writer:
        for sample in samples:
            writer.write(sample)


def contents(directory: Path) -> list[Path]:
    """The folder's files, the writers' lock file aside (it stays, empty, once a writer has been there)."""
    return sorted(path for path in directory.iterdir() if path.name != LOCK_NAME)


def tar_names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.tar"))


def temporaries(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob(".*.tmp"))


def tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(member.name, tar.extractfile(member).read()) for member in tar.getmembers()]


# layout and manifest ---------------------------------------------------------------------------


def test_ten_samples_in_shards_of_four(tmp_path):
    samples = make_samples(10)
    write_all(tmp_path, samples, per_shard=4)

    assert tar_names(tmp_path) == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert temporaries(tmp_path) == []
    manifest = read_manifest(tmp_path)
    assert manifest["num_samples"] == 10 and manifest["info"] == INFO
    assert [shard["name"] for shard in manifest["shards"]] == tar_names(tmp_path)
    assert [shard["num_samples"] for shard in manifest["shards"]] == [4, 4, 2]
    assert [key for shard in manifest["shards"] for key in shard["keys"]] == [s.key for s in samples]
    for shard in manifest["shards"]:
        data = (tmp_path / shard["name"]).read_bytes()
        assert shard["sha256"] == hashlib.sha256(data).hexdigest()
        assert shard["bytes"] == len(data)
    assert verify_shards(tmp_path) == []


def test_each_tar_holds_exactly_its_samples_members(tmp_path):
    samples = make_samples(10)
    write_all(tmp_path, samples, per_shard=4)
    by_key = {sample.key: sample for sample in samples}
    for shard in read_manifest(tmp_path)["shards"]:
        members = tar_members(tmp_path / shard["name"])
        expected = {f"{key}.{suffix}": data for key in shard["keys"] for suffix, data in by_key[key].members.items()}
        assert dict(members) == expected and len(members) == len(expected)
        assert f"{shard['keys'][0]}.000.rgb.jpg" in expected and f"{shard['keys'][0]}.001.mask.png" in expected
        # WebDataset groups consecutive members by key: each sample is contiguous, in manifest order
        keys_in_order = [name.split(".", 1)[0] for name, _ in members]
        runs = [key for i, key in enumerate(keys_in_order) if i == 0 or keys_in_order[i - 1] != key]
        assert runs == shard["keys"]


def test_empty_run_still_writes_a_manifest(tmp_path):
    write_all(tmp_path / "new", [])
    assert read_manifest(tmp_path / "new")["num_samples"] == 0 and tar_names(tmp_path / "new") == []


def test_samples_per_shard_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="samples_per_shard"):
        ShardWriter(tmp_path, 0)


# atomicity -------------------------------------------------------------------------------------


def test_open_shard_is_invisible_until_closed(tmp_path):
    writer = ShardWriter(tmp_path, 4, info=INFO)
    for sample in make_samples(2):
        writer.write(sample)
    assert list(tmp_path.glob("*.tar")) == []
    hidden = temporaries(tmp_path)
    assert len(hidden) == 1 and hidden[0].startswith(".shard-000000.tar.")
    writer.close()
    assert tar_names(tmp_path) == ["shard-000000.tar"] and temporaries(tmp_path) == []
    assert read_manifest(tmp_path)["shards"][0]["keys"] == ["s000", "s001"]


def test_exception_discards_the_open_shard_and_keeps_complete_ones(tmp_path):
    samples = make_samples(6)
    with pytest.raises(RuntimeError, match="producer crashed"), ShardWriter(tmp_path, 4, info=INFO) as writer:
        for sample in samples:
            writer.write(sample)
        raise RuntimeError("producer crashed")
    assert sorted(path.name for path in contents(tmp_path)) == ["manifest.json", "shard-000000.tar"]
    manifest = read_manifest(tmp_path)
    assert [shard["name"] for shard in manifest["shards"]] == ["shard-000000.tar"]
    assert manifest["num_samples"] == 4 and manifest["shards"][0]["keys"] == ["s000", "s001", "s002", "s003"]
    assert verify_shards(tmp_path) == []


def test_exception_before_any_complete_shard_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), ShardWriter(tmp_path, 4, info=INFO) as writer:
        writer.write(make_samples(1)[0])
        raise KeyboardInterrupt
    assert tar_names(tmp_path) == [] and temporaries(tmp_path) == []


def test_interrupted_then_resumed_run_equals_an_uninterrupted_one(tmp_path):
    samples = make_samples(10)
    write_all(tmp_path / "straight", samples, per_shard=4)

    resumed = tmp_path / "resumed"
    with pytest.raises(RuntimeError), ShardWriter(resumed, 4, info=INFO) as writer:
        for sample in samples[:7]:
            writer.write(sample)
        raise RuntimeError("killed")
    with ShardWriter(resumed, 4, info=INFO) as writer:
        for sample in samples:
            if sample.key not in writer.done_keys:
                writer.write(sample)

    names = sorted(path.name for path in contents(tmp_path / "straight"))
    assert names == sorted(path.name for path in contents(resumed))
    for name in names:
        assert (resumed / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (the writer is abandoned, never closed or aborted)."""


class FileOperations:
    """Counts the writer's file operations (create temporary, fsync, chmod, rename); can die at the n-th.

    Between any two of them the on-disk state may change (a temporary appears, becomes durable, becomes
    visible under its name), so dying at each one in turn visits every state a kill can leave.
    """

    NAMES = (("tempfile", "mkstemp"), ("os", "fsync"), ("os", "chmod"), ("os", "replace"))

    def __init__(self, monkeypatch, die_at: int | None = None):
        self.count, self.die_at, self.log = 0, die_at, []
        for module_name, name in self.NAMES:
            module = {"tempfile": tempfile, "os": os}[module_name]
            monkeypatch.setattr(module, name, self._wrap(name, getattr(module, name)))

    def _wrap(self, name, real):
        def operation(*args, **kwargs):
            if self.count == self.die_at:
                raise _Killed(f"{name} #{self.count}")
            self.count += 1
            self.log.append(name)
            return real(*args, **kwargs)

        return operation


def produce(directory: Path, samples: list[ShardSample]) -> None:
    """A producer as the world generator is one: skip what the folder already holds, write the rest, close."""
    writer = ShardWriter(directory, 4, info=INFO)
    for sample in samples:
        if sample.key not in writer.done_keys:
            writer.write(sample)
    writer.close()


def assert_consistent(directory: Path) -> None:
    """What any reader may rely on at any moment: the manifest lists only whole shards, each scene once."""
    if not (directory / "manifest.json").exists():
        return
    manifest = read_manifest(directory)
    assert verify_shards(directory) == []  # every listed shard exists, with the listed bytes
    keys = [key for shard in manifest["shards"] for key in shard["keys"]]
    assert len(keys) == len(set(keys)) and manifest["num_samples"] == len(keys)
    for shard in manifest["shards"]:  # and a shard holds the scenes listed for it
        names = [name.split(".", 1)[0] for name, _ in tar_members(directory / shard["name"])]
        assert list(dict.fromkeys(names)) == shard["keys"]


def test_a_kill_at_any_file_operation_leaves_a_consistent_folder_that_resumes_exactly(tmp_path, monkeypatch):
    samples = make_samples(10)
    produce(tmp_path / "straight", samples)
    expected = {path.name: path.read_bytes() for path in contents(tmp_path / "straight")}
    with monkeypatch.context() as patch:
        operations = FileOperations(patch)
        produce(tmp_path / "counted", samples)
    total = operations.count
    assert total == 6 * 4  # 3 shards + 3 manifest saves, each: temporary, fsync, chmod, rename

    for die_at in range(total):
        directory = tmp_path / f"killed_at_{die_at}"
        with monkeypatch.context() as patch, pytest.raises(_Killed):
            FileOperations(patch, die_at)
            produce(directory, samples)
        assert_consistent(directory)

        produce(directory, samples)  # re-run the producer: it resumes

        assert {path.name: path.read_bytes() for path in contents(directory)} == expected, f"killed at {die_at}"


def test_a_scene_in_a_closed_shard_is_refused_in_the_same_session(tmp_path):
    """Not only scenes of a resumed folder's manifest: a shard closed a moment ago holds its scenes too."""
    samples = make_samples(5)
    with ShardWriter(tmp_path, 4, info=INFO) as writer:
        for sample in samples[:4]:
            writer.write(sample)  # the fourth closes shard 0
        assert writer.done_keys == {sample.key for sample in samples[:4]}
        with pytest.raises(ValueError, match="'s001' is already in this dataset"):
            writer.write(samples[1])
        writer.write(samples[4])
    keys = [key for shard in read_manifest(tmp_path)["shards"] for key in shard["keys"]]
    assert keys == [sample.key for sample in samples]


# resume ----------------------------------------------------------------------------------------


def test_resume_reports_done_keys_refuses_duplicates_and_continues_numbering(tmp_path):
    samples = make_samples(7)
    write_all(tmp_path, samples[:5], per_shard=4)

    with ShardWriter(tmp_path, 4, info=dict(reversed(list(INFO.items())))) as writer:
        assert writer.done_keys == {s.key for s in samples[:5]}
        with pytest.raises(ValueError, match="'s002' is already in this dataset"):
            writer.write(samples[2])
        writer.write(samples[5])
        with pytest.raises(ValueError, match="'s005' is already in this dataset"):
            writer.write(samples[5])  # still in the open shard
        writer.write(samples[6])

    manifest = read_manifest(tmp_path)
    assert [shard["name"] for shard in manifest["shards"]] == [
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-000002.tar",
    ]
    assert manifest["shards"][2]["keys"] == ["s005", "s006"] and manifest["num_samples"] == 7
    assert verify_shards(tmp_path) == []
    assert [name for name, _ in tar_members(tmp_path / "shard-000002.tar")][0] == "s005.meta.json"


@pytest.mark.parametrize(
    ("other_info", "field"),
    [({**INFO, "seed": 1}, "seed"), ({"generator": "test"}, "seed"), ({**INFO, "extra": [1]}, "extra")],
)
def test_resume_with_a_different_info_is_refused(tmp_path, other_info, field):
    write_all(tmp_path, make_samples(2), per_shard=4)
    before = {path.name: path.read_bytes() for path in contents(tmp_path)}
    with pytest.raises(ValueError, match=rf"different configuration \({field}: "):
        ShardWriter(tmp_path, 4, info=other_info)
    assert {path.name: path.read_bytes() for path in contents(tmp_path)} == before


def test_info_with_tuples_resumes_as_the_same_configuration(tmp_path):
    info = {"image_size": (SIZE, SIZE), "nested": {"views": (1, 2)}}
    write_all(tmp_path, make_samples(1), info=info)
    with ShardWriter(tmp_path, 4, info={"nested": {"views": [1, 2]}, "image_size": [SIZE, SIZE]}) as writer:
        assert writer.done_keys == {"s000"}


def test_stale_temporaries_are_swept_on_open(tmp_path, caplog):
    write_all(tmp_path, make_samples(4), per_shard=4)
    (tmp_path / ".shard-000009.tar.abc.tmp").write_bytes(b"left by a killed run")
    (tmp_path / ".manifest.json.x1y2.tmp").write_bytes(b"{")
    (tmp_path / "notes.txt").write_text("keep me")
    with caplog.at_level("WARNING"):
        ShardWriter(tmp_path, 4, info=INFO).close()
    assert temporaries(tmp_path) == []
    # each removal is said, with what it was (mutation testing: the bare path as the message survived)
    assert sorted(caplog.messages) == [
        f"removed {tmp_path / name} left by an interrupted writer"
        for name in (".manifest.json.x1y2.tmp", ".shard-000009.tar.abc.tmp")
    ]
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert tar_names(tmp_path) == ["shard-000000.tar"] and verify_shards(tmp_path) == []


def test_shard_renamed_but_never_listed_is_removed_and_rewritten(tmp_path):
    """A kill between a shard's rename and the manifest update leaves a complete, unlisted shard."""
    samples = make_samples(8)
    write_all(tmp_path / "straight", samples, per_shard=4)
    resumed = tmp_path / "resumed"
    write_all(resumed, samples[:4], per_shard=4)
    (resumed / "shard-000001.tar").write_bytes((tmp_path / "straight" / "shard-000001.tar").read_bytes())
    (resumed / "shard-000007.tar").write_bytes(b"an unlisted leftover with our name pattern")
    (resumed / "other-000001.tar").write_bytes(b"not ours: another prefix")

    with ShardWriter(resumed, 4, info=INFO) as writer:
        assert writer.done_keys == {s.key for s in samples[:4]}
        assert tar_names(resumed) == ["other-000001.tar", "shard-000000.tar"]  # a glob sees no duplicate scene
        for sample in samples[4:]:
            writer.write(sample)
    for name in ["shard-000000.tar", "shard-000001.tar", "manifest.json"]:
        assert (resumed / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


# refusals --------------------------------------------------------------------------------------


def _good() -> ShardSample:
    return make_samples(1, start=7)[0]


def _with(sample: ShardSample, **members: bytes) -> ShardSample:
    return ShardSample(sample.key, {**sample.members, **members})


def _meta_with(sample: ShardSample, **fields) -> ShardSample:
    record = {**json.loads(sample.members["meta.json"]), **fields}
    return _with(sample, **{"meta.json": dump_meta(record)})


def _without(sample: ShardSample, name: str) -> ShardSample:
    return ShardSample(sample.key, {k: v for k, v in sample.members.items() if k != name})


REFUSALS = {
    "bmp_member": (lambda s: ShardSample(s.key, {**s.members, "000.rgb.bmp": b"BM"}), "'000.rgb.bmp' is not part"),
    "pickle_member": (lambda s: ShardSample(s.key, {**s.members, "x.pickle": b"\x80\x04."}), "'x.pickle' is not part"),
    "pyd_member": (lambda s: ShardSample(s.key, {**s.members, "data.pyd": b"MZ"}), "'data.pyd' is not part"),
    "npy_member": (lambda s: ShardSample(s.key, {**s.members, "000.depth.npy": b"\x93NUMPY"}), "'000.depth.npy'"),
    "dotted_key": (lambda s: ShardSample("s007.bak", s.members), "scene key 's007.bak'"),
    "path_key": (lambda s: ShardSample("../s007", s.members), "scene key '../s007'"),
    "scene_id_differs": (lambda s: _meta_with(s, scene_id="s999"), "scene_id 's999' differs from the sample key"),
    "missing_member": (lambda s: _without(s, "001.depth.png"), "names member '001.depth.png', which the sample lacks"),
    "no_meta": (lambda s: _without(s, "meta.json"), "sample has no meta.json"),
    "invalid_meta": (lambda s: _meta_with(s, pose_source="lidar"), "field 'pose_source' is 'lidar'"),
    "undecodable_meta": (lambda s: _with(s, **{"meta.json": b"\xff"}), "meta.json is not valid UTF-8 JSON"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_writer_refuses_samples_the_reader_would_reject(tmp_path, case):
    make_bad, message = REFUSALS[case]
    good = _good()
    with ShardWriter(tmp_path, 2, info=INFO) as writer:
        with pytest.raises((ShardFormatError, ValueError), match=message):
            writer.write(make_bad(good))
        assert tar_names(tmp_path) == [] and temporaries(tmp_path) == [] and writer.done_keys == set()
        writer.write(good)  # the refused sample left no trace in the open shard
    assert [name.split(".", 1)[0] for name, _ in tar_members(tmp_path / "shard-000000.tar")] == ["s007"] * 7
    assert read_manifest(tmp_path)["num_samples"] == 1


@pytest.mark.parametrize("case", ["newline_member", "newline_key"])
def test_writer_refuses_names_with_a_trailing_newline(tmp_path, case):
    good = _good()
    if case == "newline_member":
        bad = _with(good, **{"000.rgb.jpg\n": b"x"})
    else:
        bad = ShardSample("s007\n", _meta_with(good, scene_id="s007\n").members)
    with ShardWriter(tmp_path, 2, info=INFO) as writer, pytest.raises(ShardFormatError):
        writer.write(bad)


# determinism and verification ------------------------------------------------------------------


def test_same_samples_give_byte_identical_shards_and_manifests(tmp_path):
    write_all(tmp_path / "a", make_samples(6), per_shard=4)
    write_all(tmp_path / "b", make_samples(6), per_shard=4)  # rebuilt from scratch, not the same objects
    names = sorted(path.name for path in contents(tmp_path / "a"))
    assert names == ["manifest.json", "shard-000000.tar", "shard-000001.tar"]
    assert names == sorted(path.name for path in contents(tmp_path / "b"))
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    write_all(tmp_path / "c", make_samples(6, seed=1), per_shard=4)
    assert (tmp_path / "c" / "shard-000000.tar").read_bytes() != (tmp_path / "a" / "shard-000000.tar").read_bytes()


def test_member_insertion_order_does_not_change_the_shard(tmp_path):
    samples = make_samples(3)
    shuffled = [ShardSample(s.key, dict(reversed(list(s.members.items())))) for s in samples]
    assert [list(s.members) for s in shuffled] != [list(s.members) for s in samples]
    write_all(tmp_path / "a", samples)
    write_all(tmp_path / "b", shuffled)
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() == (tmp_path / "b" / "shard-000000.tar").read_bytes()


def test_verify_shards_reports_modified_and_missing_shards(tmp_path):
    write_all(tmp_path, make_samples(10), per_shard=4)
    modified = tmp_path / "shard-000000.tar"
    data = bytearray(modified.read_bytes())
    data[len(data) // 3] ^= 0x01
    modified.write_bytes(bytes(data))
    (tmp_path / "shard-000001.tar").unlink()

    problems = verify_shards(tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith(str(modified)) and "SHA-256" in problems[0]
    assert problems[1].startswith(str(tmp_path / "shard-000001.tar")) and "missing" in problems[1]


def test_read_manifest_errors_name_the_file(tmp_path):
    path = tmp_path / "manifest.json"
    with pytest.raises(FileNotFoundError, match=str(path).replace("\\", "\\\\")):
        read_manifest(tmp_path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ShardFormatError, match="manifest.json: not valid JSON"):
        read_manifest(tmp_path)
    path.write_text(json.dumps({"format": "something-else", "version": 1, "shards": []}))
    with pytest.raises(ShardFormatError, match="manifest.json: not a psfm-shard-manifest v1 manifest"):
        read_manifest(tmp_path)
    path.write_text(json.dumps({"format": "psfm-shard-manifest", "version": 1, "shards": [{"name": "x.tar"}]}))
    with pytest.raises(ShardFormatError, match=r"shards\[0\] lacks \['keys', 'num_samples', 'sha256'\]"):
        read_manifest(tmp_path)


def test_writer_refuses_to_resume_over_a_corrupt_manifest(tmp_path):
    (tmp_path / "manifest.json").write_bytes(b"\x00garbage")
    with pytest.raises(ShardFormatError, match="manifest.json"):
        ShardWriter(tmp_path, 4, info=INFO)


def test_tar_headers_are_normalised(tmp_path):
    write_all(tmp_path, make_samples(1))
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        for member in tar.getmembers():
            assert member.isfile() and member.mtime == 0 and member.uid == member.gid == 0
            assert member.uname == member.gname == "" and member.mode == 0o644


# one writer per folder ----------------------------------------------------------------------------


def test_a_second_writer_on_the_same_folder_is_refused_naming_it(tmp_path):
    """Two writers on one folder swept each other's temporaries and overwrote each other's shards."""
    with ShardWriter(tmp_path, 4, info=INFO) as first:
        first.write(make_samples(1)[0])
        with pytest.raises(UsageError, match=f"{tmp_path}: another writer holds this folder") as refused:
            ShardWriter(tmp_path, 4, info=INFO)
        assert "\n" not in str(refused.value)
        assert temporaries(tmp_path) != []  # the first writer's open shard survived the refused second
    write_all(tmp_path, make_samples(1, start=1))  # released on exit: the next writer resumes
    assert read_manifest(tmp_path)["num_samples"] == 2


def test_the_lock_is_released_when_the_writer_fails(tmp_path):
    (tmp_path / "manifest.json").write_bytes(b"\x00garbage")
    with pytest.raises(ShardFormatError):
        ShardWriter(tmp_path, 4, info=INFO)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(RuntimeError, match="boom"), ShardWriter(tmp_path, 4, info=INFO):
        raise RuntimeError("boom")
    write_all(tmp_path, make_samples(1))  # neither failure left the folder locked
