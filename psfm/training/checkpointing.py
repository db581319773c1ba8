"""Checkpoint files: atomic writes, the run's last step always saved, names that survive a moved run folder.

Which checkpoint a run resumes from, and whether it may, is ``psfm.training.resume``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from psfm.io import AtomicFile


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary sibling, then rename: a kill mid-save never leaves a torn ``last.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic = AtomicFile(path, "wb")
        try:
            torch.save(checkpoint, atomic.handle)
        except BaseException:
            atomic.discard()
            raise
        atomic.commit()

    def remove_checkpoint(self, path) -> None:
        if os.path.exists(path):
            os.remove(path)


class FinalCheckpoint(Callback):
    """Write ``last.ckpt`` at the run's last step when the step interval did not just do it.

    ``ModelCheckpoint(every_n_train_steps=k)`` saves at multiples of k only, so a run of 7 steps
    with k = 2 ended with ``last.ckpt`` at step 6: re-running the finished job repeated step 7, and
    its weights were not the exported ones. Every rank calls this (sharded strategies save together).
    """

    def __init__(self, periodic: ModelCheckpoint):
        self.periodic = periodic

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.periodic.dirpath is None or trainer.global_step == 0:
            return
        last = Path(self.periodic.dirpath) / f"{self.periodic.CHECKPOINT_NAME_LAST}{self.periodic.FILE_EXTENSION}"
        # ModelCheckpoint's own record of its last save (private, but the attribute its own hooks test);
        # a psfm test (7 steps, every 2) fails if a Lightning upgrade renames it and the final save stops
        if self.periodic._last_global_step_saved != trainer.global_step or not last.exists():
            trainer.save_checkpoint(last)
            self.periodic._last_global_step_saved = trainer.global_step


class RunFolderCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that follows its run folder when the folder is moved between a kill and the resume.

    Lightning keeps the names of its last and best files only while the stored ``dirpath`` equals the
    current one. After a ``mv`` it forgot them, found ``last.ckpt`` taken and wrote ``last-v1.ckpt``,
    which resume=auto never reads: every later re-run restarted from the step before the move (and
    forgot the best score). When the resumed checkpoint lies in this callback's folder, the stored
    paths are moved onto the folder's new place; version suffixes are off, so names never change.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(enable_version_counter=False, **kwargs)
        self._resumed_from: str | None = None

    @property
    def state_key(self) -> str:
        # filed under ModelCheckpoint's key (Lightning prefixes the class name), so checkpoints written
        # before this class existed restore their state into it, and its checkpoints into a plain one
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._resumed_from = trainer.ckpt_path  # Lightning calls this just before load_state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath and self._resumed_here():
            state_dict = moved_paths(state_dict, old, self.dirpath)
        super().load_state_dict(state_dict)

    def _resumed_here(self) -> bool:
        """A checkpoint from another run's folder keeps Lightning's behaviour: its best score is not this run's."""
        return self._resumed_from is not None and Path(self._resumed_from).resolve().parent == Path(self.dirpath)


def moved_paths(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``ModelCheckpoint`` state with every path under ``old`` moved under ``new``."""

    def move(path: Any) -> Any:
        return new + path[len(old) :] if isinstance(path, str) and path.startswith(old + os.sep) else path

    moved = {key: move(value) for key, value in state.items()}
    moved["dirpath"] = new
    moved["best_k_models"] = {move(path): score for path, score in state.get("best_k_models", {}).items()}
    return moved
