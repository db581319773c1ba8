"""Checkpoint writes are atomic: a temporary sibling, then ``os.replace``; ``last.ckpt`` is never torn.

The kill -9 test in ``test_distributed.py`` kills between saves, so a non-atomic write would pass it;
these tests look at the write itself.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch

from psfm.training.checkpointing import AtomicCheckpointIO
from psfm.training.train import train
from tests.training.conftest import tiny_command


class _Killed(Exception):
    pass


def _file_of(target, directory: Path):
    """The path ``torch.save`` writes to: a path as given, an open file found by inode in ``directory``.

    Anything else (an in-memory buffer, an unknown file) comes back as it is, which no assertion accepts.
    """
    if isinstance(target, str | os.PathLike):
        return Path(target)
    try:
        inode = os.fstat(target.fileno()).st_ino
    except (AttributeError, OSError, io.UnsupportedOperation):
        return target
    return next((path for path in directory.iterdir() if path.stat().st_ino == inode), target)


def _half_save(obj, target) -> None:
    """What a process killed mid-``torch.save`` leaves: the first half of the bytes at ``target``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    if isinstance(target, str | os.PathLike):
        Path(target).write_bytes(data)
    else:
        target.write(data)
        target.flush()


def test_a_save_that_dies_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 2}, path)
    before = path.read_bytes()
    real_save = torch.save

    def dying_save(obj, target, *args, **kwargs):
        monkeypatch.setattr(torch, "save", real_save)
        _half_save(obj, target)
        raise _Killed

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(_Killed):
        AtomicCheckpointIO().save_checkpoint({"global_step": 4}, path)

    assert path.read_bytes() == before and torch.load(path, weights_only=True) == {"global_step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # the torn temporary is discarded


def test_the_checkpoint_is_written_beside_its_name_then_renamed(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 2}, path)
    before = path.read_bytes()
    real_save, real_replace = torch.save, os.replace
    seen = {}

    def watching_save(obj, target, *args, **kwargs):
        seen["target"] = _file_of(target, tmp_path)
        seen["during"] = path.read_bytes()  # mid-write, readers still get the old checkpoint
        return real_save(obj, target, *args, **kwargs)

    def watching_replace(source, destination):
        seen.setdefault("replaced", []).append((Path(source), Path(destination)))
        seen["before_rename"] = path.read_bytes()
        return real_replace(source, destination)

    monkeypatch.setattr(torch, "save", watching_save)
    monkeypatch.setattr(os, "replace", watching_replace)
    AtomicCheckpointIO().save_checkpoint({"global_step": 4}, path)

    temporary = seen["target"]
    # the same directory (so the rename is atomic) under a hidden name that a *.ckpt glob never sees
    assert temporary.parent == tmp_path and temporary.name.startswith(".last.ckpt.") and temporary.suffix == ".tmp"
    assert seen["during"] == seen["before_rename"] == before
    assert seen["replaced"] == [(temporary, path)]
    assert torch.load(path, weights_only=True) == {"global_step": 4} and not temporary.exists()


def test_training_saves_every_checkpoint_through_a_temporary_sibling(tiny_world, tmp_path, monkeypatch):
    """``train`` must hand Lightning the atomic writer; Lightning's own truncates ``last.ckpt`` and rewrites it."""
    real_save, real_replace = torch.save, os.replace
    targets, renames = [], {}

    def recording_save(obj, target, *args, **kwargs):
        targets.append(_file_of(target, tmp_path / "run" / "checkpoints"))
        return real_save(obj, target, *args, **kwargs)

    def recording_replace(source, destination):
        renames[Path(source)] = Path(destination)
        return real_replace(source, destination)

    monkeypatch.setattr(torch, "save", recording_save)
    monkeypatch.setattr(os, "replace", recording_replace)
    train(tiny_command(tiny_world, tmp_path / "run", max_steps=2, limit_val_batches=0, checkpoint_every_steps=1))

    checkpoints = tmp_path / "run" / "checkpoints"
    assert len(targets) >= 2  # step 1 and step 2
    for target in targets:
        assert isinstance(target, Path) and target.parent == checkpoints and target.name.startswith("."), target
        assert renames[target].parent == checkpoints and renames[target].suffix == ".ckpt"
    assert checkpoints / "last.ckpt" in renames.values()


class _TrainerBuilt(Exception):
    pass


@pytest.mark.parametrize("strategy", ["auto", "ddp", "fsdp2"])
def test_every_strategy_gets_the_atomic_writer(tiny_world, tmp_path, monkeypatch, strategy):
    """FSDP2 (``ModelParallelStrategy`` with whole-model checkpoints) saves through the CheckpointIO too.

    Without it Lightning writes into a temporary file of the system's temp folder and moves it over
    ``last.ckpt``: a copy, not a rename, wherever that folder is on another filesystem than the run.
    """
    import lightning as L

    seen = {}

    def trainer(**kwargs):
        seen.update(kwargs)
        raise _TrainerBuilt

    monkeypatch.setattr(L, "Trainer", trainer)
    with pytest.raises(_TrainerBuilt):
        train(tiny_command(tiny_world, tmp_path / "run", strategy=strategy))  # real data: train checks it first
    assert [type(plugin) for plugin in seen["plugins"]] == [AtomicCheckpointIO]
