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

from psfm.training.checkpointing import AtomicCheckpointIO, RunFolderCheckpoint, moved_paths
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


def test_removing_a_checkpoint_deletes_it_and_a_missing_one_is_no_error(tmp_path):
    """``ModelCheckpoint`` removes superseded top-k files through the writer (mutation testing: never reached)."""
    writer, stale = AtomicCheckpointIO(), tmp_path / "epoch=0.ckpt"
    stale.write_bytes(b"old")
    writer.remove_checkpoint(stale)
    assert not stale.exists()
    writer.remove_checkpoint(stale)  # already gone (another rank, or a retried cleanup): nothing to do
    assert sorted(tmp_path.iterdir()) == []


def test_moved_paths_rebases_every_path_under_the_old_folder_and_nothing_else():
    """After ``mv old new`` the callback's stored names follow the folder; paths elsewhere stay as they were."""
    old, new = os.path.join("runs", "a", "checkpoints"), os.path.join("moved", "checkpoints")
    state = {
        "dirpath": old,
        "best_model_path": os.path.join(old, "best.ckpt"),
        "last_model_path": os.path.join(old, "last.ckpt"),
        "kth_best_model_path": os.path.join("elsewhere", "k.ckpt"),
        "best_model_score": 0.5,
        "best_k_models": {os.path.join(old, "best.ckpt"): 0.5, os.path.join(old + "2", "x.ckpt"): 0.7},
    }
    moved = moved_paths(state, old, new)
    assert moved == {
        "dirpath": new,
        "best_model_path": os.path.join(new, "best.ckpt"),
        "last_model_path": os.path.join(new, "last.ckpt"),
        "kth_best_model_path": os.path.join("elsewhere", "k.ckpt"),
        "best_model_score": 0.5,
        # a sibling folder that merely starts with the same characters is not under ``old``
        "best_k_models": {os.path.join(new, "best.ckpt"): 0.5, os.path.join(old + "2", "x.ckpt"): 0.7},
    }
    assert state["best_k_models"] == {os.path.join(old, "best.ckpt"): 0.5, os.path.join(old + "2", "x.ckpt"): 0.7}
    # a state written with save_top_k=0 holds no best_k_models (mutation testing: ``.get(key, None)`` survived)
    assert moved_paths({"dirpath": old}, old, new) == {"dirpath": new, "best_k_models": {}}


@pytest.mark.parametrize("resumed_from", [None, "other_run/checkpoints/last.ckpt", "here/last.ckpt"])
def test_stored_paths_move_only_when_resuming_from_this_folder(tmp_path, resumed_from):
    """A fresh start or another run's checkpoint keeps Lightning's behaviour (its best is not this run's)."""
    here = tmp_path / "here"
    callback = RunFolderCheckpoint(dirpath=str(here))
    callback._resumed_from = None if resumed_from is None else str(tmp_path / resumed_from)
    old = str(tmp_path / "before_the_move")
    state = {
        "dirpath": old,
        "best_model_score": torch.tensor(0.5),
        "best_model_path": os.path.join(old, "best.ckpt"),
        "last_model_path": os.path.join(old, "last.ckpt"),
        "best_k_models": {os.path.join(old, "best.ckpt"): torch.tensor(0.5)},
    }
    callback.load_state_dict(state)
    if resumed_from == "here/last.ckpt":  # moved onto this folder, and kept
        assert (callback.best_model_path, callback.last_model_path) == (
            str(here / "best.ckpt"),
            str(here / "last.ckpt"),
        )
        assert list(callback.best_k_models) == [str(here / "best.ckpt")]
    else:  # Lightning's behaviour: another folder's records are not this run's, only best_model_path is read
        assert (callback.best_model_path, callback.last_model_path) == (os.path.join(old, "best.ckpt"), "")
        assert callback.best_k_models == {}


@pytest.mark.parametrize(
    ("saved_step", "last_exists", "saves"),
    [(6, True, 0), (6, False, 1), (4, True, 1), (4, False, 1)],
)
def test_the_final_checkpoint_is_written_only_when_the_last_one_is_not_of_this_step(
    tmp_path, saved_step, last_exists, saves
):
    """At the end of a 6-step run: no second save of the step the interval just saved, but a save when the
    interval saved an earlier step or ``last.ckpt`` is gone (mutation testing: the existence test inverted,
    which saved every finished run twice, survived)."""
    from types import SimpleNamespace

    from psfm.training.checkpointing import FinalCheckpoint

    periodic = RunFolderCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    periodic._last_global_step_saved = saved_step
    if last_exists:
        (tmp_path / "last.ckpt").write_bytes(b"step 6")
    written = []
    trainer = SimpleNamespace(global_step=6, save_checkpoint=written.append)
    FinalCheckpoint(periodic).on_train_end(trainer, None)
    assert written == [tmp_path / "last.ckpt"] * saves
    assert periodic._last_global_step_saved == 6  # the step last.ckpt now holds
