"""``psfm shards``: what a person runs before training must survive, and account for, every bad scene."""

from __future__ import annotations

from pathlib import Path

from psfm.commands import shards
from tests.datamodules.shard_surgery import cut_before_scene, edit_first_meta, finite_config


def shards_command(directory: Path, batches: int = 10) -> shards.ShardsCommand:
    """Every check on (verify, decode), and the training loader streamed once through in finite mode."""
    return shards.ShardsCommand(data=str(directory), verify=True, batches=batches, datamodule=finite_config(directory))


def test_a_scene_with_all_zero_poses_is_skipped_not_a_crash(scene_shards):
    """``LinAlgError: Singular matrix`` in the loader's pose normalization, naming no scene, before validation."""
    directory, keys = scene_shards

    def zero_poses(record: dict) -> None:
        for view in record["views"]:
            view["cam_to_world"] = [[0.0] * 4] * 4

    edit_first_meta(sorted(directory.glob("*.tar"))[0], zero_poses)
    metrics = shards.run(shards_command(directory))
    assert metrics["scenes"] == len(keys) - 1 and metrics["skipped"] == 1


def test_shards_compares_the_manifest_with_what_it_read_and_skipped_by_reason(scene_shards, capsys):
    """Only a scene count was printed: scenes lost to a cut or deleted shard were in no column at all."""
    directory, keys = scene_shards
    cut_before_scene(directory / "shard-000001.tar", 1)  # 2 of its 3 scenes lost at a block boundary
    (directory / "shard-000002.tar").unlink()  # 3 scenes
    metrics = shards.run(shards_command(directory))
    assert metrics["manifest_scenes"] == len(keys) == 12
    assert metrics["scenes"] == 7 and metrics["skipped"] == 5 and metrics["unaccounted"] == 0
    assert metrics["skipped/truncated_shard"] == 2 and metrics["skipped/FileNotFoundError"] == 3
    assert metrics["checksum_problems"] == 2  # the cut shard's hash and the missing one
    out = capsys.readouterr().out
    assert "scenes in manifest" in out and "scenes read" in out and "truncated_shard" in out
