"""Checkpoint files: atomic writes, safe loads, and a clear refusal to resume an incompatible run."""

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


def check_resumable(path: str | Path, model: dict, optim: dict | None = None) -> None:
    """Fail with one message if ``path`` is missing, unreadable, or from a different model configuration."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found (resume=auto finds <run_dir>/checkpoints/last.ckpt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable psfm checkpoint ({type(error).__name__}: {error})") from None
    stored = checkpoint.get("hyper_parameters", {}).get("model")
    if stored is None:
        raise ValueError(f"{path}: not a psfm pretraining checkpoint (no model hyperparameters)")
    difference = first_difference(stored, model)
    if difference:
        raise ValueError(
            f"{path}: made with a different model configuration ({difference}); "
            "use a new run_dir, or resume=never to start over"
        )


def first_difference(old: Any, new: Any, prefix: str = "model") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            found = first_difference(old.get(key), new.get(key), f"{prefix}.{key}")
            if found:
                return found
        return None
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        old, new = list(old), list(new)
    return None if old == new else f"{prefix}: {old!r} in the checkpoint, {new!r} now"
