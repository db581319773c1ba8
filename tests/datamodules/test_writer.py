"""ShardWriter: atomic shards, manifest, resume, refusals, determinism."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from psfm.datamodules.format import ShardFormatError, dump_meta
from psfm.datamodules.sample import ShardSample
from psfm.datamodules.writer import ShardWriter, read_manifest, verify_shards
from tests.conftest import synthetic_scene


def samples(count: int, seed: int = 0) -> list[ShardSample]:
    rng = np.random.default_rng(seed)
    return [synthetic_scene(f"s{i:03d}", rng, 2, 8) for i in range(count)]


def test_shards_manifest_and_members(tmp_path):
    written = samples(10)
    with ShardWriter(tmp_path, 4, info={"a": 1}) as writer:
        for sample in written:
            writer.write(sample)
    manifest = read_manifest(tmp_path)
    assert [s["name"] for s in manifest["shards"]] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert [s["num_samples"] for s in manifest["shards"]] == [4, 4, 2] and manifest["num_samples"] == 10
    assert [k for s in manifest["shards"] for k in s["keys"]] == [s.key for s in written]
    assert verify_shards(tmp_path) == []
    with tarfile.open(tmp_path / "shard-000002.tar") as tar:
        names = tar.getnames()
    assert names[:3] == ["s008.meta.json", "s008.000.depth.png", "s008.000.mask.png"] and len(names) == 2 * 7


def test_open_shard_is_invisible_until_complete(tmp_path):
    writer = ShardWriter(tmp_path, 4)
    for sample in samples(2):
        writer.write(sample)
    assert not list(tmp_path.glob("*.tar")) and len(list(tmp_path.glob(".*.tmp"))) == 1
    writer.close()
    assert [p.name for p in tmp_path.glob("*.tar")] == ["shard-000000.tar"] and not list(tmp_path.glob(".*.tmp"))


def test_exception_discards_only_the_open_shard(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), ShardWriter(tmp_path, 3) as writer:
        for sample in samples(5):
            writer.write(sample)
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("manifest")] == ["shard-000000.tar"]
    assert read_manifest(tmp_path)["num_samples"] == 3


def test_resume_continues_and_refuses_duplicates_or_other_configs(tmp_path):
    first = samples(6)
    with ShardWriter(tmp_path, 4, info={"seed": 0}) as writer:
        for sample in first[:5]:
            writer.write(sample)
    (tmp_path / ".shard-000009.tar.abc.tmp").write_bytes(b"left by a killed run")
    with ShardWriter(tmp_path, 4, info={"seed": 0}) as writer:
        assert writer.done_keys == {s.key for s in first[:5]}
        assert not list(tmp_path.glob(".*.tmp"))
        with pytest.raises(ValueError, match="'s000' is already"):
            writer.write(first[0])
        writer.write(first[5])
    assert [s["name"] for s in read_manifest(tmp_path)["shards"]][-1] == "shard-000002.tar"
    with pytest.raises(ValueError, match="different configuration.*seed"):
        ShardWriter(tmp_path, 4, info={"seed": 1})


def _with_member(sample: ShardSample, name: str, data: bytes) -> ShardSample:
    return ShardSample(sample.key, {**sample.members, name: data})


def test_writer_refuses_what_the_reader_would_reject(tmp_path):
    good = samples(1)[0]
    meta = json.loads(good.members["meta.json"])
    bad = [
        (_with_member(good, "data.pyd", b"pickle"), "not part of the format"),
        (_with_member(good, "000.rgb.bmp", b"x"), "not part of the format"),
        (ShardSample("bad.key", good.members), "no dots"),
        (_with_member(good, "meta.json", dump_meta({**meta, "scene_id": "other"})), "differs from the sample key"),
        (ShardSample(good.key, {k: v for k, v in good.members.items() if k != "000.depth.png"}), "lacks"),
    ]
    with ShardWriter(tmp_path, 2) as writer:
        for sample, message in bad:
            with pytest.raises((ShardFormatError, ValueError), match=message):
                writer.write(sample)
    assert not list(tmp_path.glob("*.tar")) and read_manifest(tmp_path)["num_samples"] == 0


def test_same_samples_give_identical_bytes_and_corruption_is_found(tmp_path):
    for folder in ("a", "b"):
        with ShardWriter(tmp_path / folder, 3) as writer:
            for sample in samples(4):
                writer.write(sample)
    for name in ("shard-000000.tar", "shard-000001.tar", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    shard = tmp_path / "a" / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    (tmp_path / "a" / "shard-000001.tar").unlink()
    problems = verify_shards(tmp_path / "a")
    assert len(problems) == 2 and "SHA-256" in problems[0] and "missing" in problems[1]


def test_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ShardFormatError, match="manifest.json: not valid JSON"):
        read_manifest(tmp_path)
