"""Which checkpoint a run resumes from, and whether it may: same model always, same settings unless forced.

``resume``: ``auto`` (the run folder's newest ``last.ckpt``, if any), ``force`` (the same, accepting
other optimizer or data settings), ``never``, or a checkpoint path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from psfm.errors import MissingPathError, UsageError
from psfm.training.config import PretrainCommand

log = logging.getLogger("psfm.pretrain")

SETTINGS_KEY = "psfm_resume_settings"
KEYWORDS = ("auto", "force", "never")


def resume_settings(command: PretrainCommand) -> dict[str, dict[str, Any]]:
    """What a resumed run must share with its checkpoint besides the model.

    Another optimizer would continue moments and a schedule made for different ones; another batch
    size, dataset, image size or view sampling would continue exact resume's data position in a
    different stream, and another gradient accumulation would count steps differently. ``max_steps``
    is left out: raising it is how a finished run is extended.
    """
    data = command.datamodule
    return {
        "optim": asdict(command.optim),
        "datamodule": {
            "train": _absolute_sources(data.train),
            "batch_size": data.batch_size,
            "image_size": list(data.image_size),
            "views": asdict(data.views),
        },
        "trainer": {"accumulate_grad_batches": command.trainer.accumulate_grad_batches},
    }


def default_settings() -> dict[str, dict[str, Any]]:
    """``resume_settings`` of psfm's default command: what a setting added since a checkpoint defaults to."""
    return resume_settings(PretrainCommand())


def _absolute_sources(sources: str) -> str:
    """Local shard sources as absolute paths, so the same data typed from another folder compares equal."""

    def absolute(part: str) -> str:
        return part if part.startswith("pipe:") or "://" in part else os.path.abspath(part)

    return "::".join(absolute(part) for part in sources.split("::"))


class ResumeSettings(Callback):
    """Store ``resume_settings`` in every checkpoint, where ``check_resumable`` compares them on resume."""

    def __init__(self, settings: dict[str, dict[str, Any]]):
        self.settings = settings

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[SETTINGS_KEY] = self.settings


def find_checkpoint(command: PretrainCommand, run_dir: Path) -> Path | None:
    """The checkpoint ``command.resume`` names; ``None`` when starting over or when there is none yet."""
    if command.resume == "never":
        return None
    if command.resume in KEYWORDS:
        return newest_last_checkpoint(run_dir / "checkpoints")
    return Path(command.resume)


def newest_last_checkpoint(directory: Path) -> Path | None:
    """``last.ckpt``, unless a ``last-vN.ckpt`` beside it holds a later step.

    Lightning wrote versioned names when a run folder was moved between a kill and the resume (psfm
    now keeps ``last.ckpt``); such folders then held their newest step under a name resume=auto missed.
    """
    candidates = [path for path in [directory / "last.ckpt", *sorted(directory.glob("last-v*.ckpt"))] if path.is_file()]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    steps = {path: _global_step(path) for path in candidates}
    newest = max(candidates, key=steps.__getitem__)  # the first of equals: last.ckpt
    if newest.name != "last.ckpt":
        names = ", ".join(path.name for path in candidates)
        log.warning("resuming from %s, at step %d the newest of %s", newest, steps[newest], names)
    return newest


def _global_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # torn or foreign: never the newest
        return -1


def check_resumable(
    path: Path, model: dict, settings: dict, force: bool = False, defaults: dict | None = None
) -> list[str]:
    """Refuse a missing or unreadable checkpoint, another model (always) and other settings (unless ``force``).

    ``defaults`` (psfm's default settings, in the shape of ``settings``) lets a run made before a setting
    existed resume: a setting the checkpoint lacks is no change while it holds psfm's default, which keeps
    the behaviour from before it was added. The model gets no such leniency: a new model key may mean new
    weights or another computation, so it must match exactly. Returns the settings that differ (only ever
    non-empty under ``force``), for the log.

    Raises:
        MissingPathError: no such file.
        UsageError: one line listing every differing key as ``key: old in the checkpoint, new now``.
    """
    if not path.is_file():
        raise MissingPathError(f"{path}: checkpoint not found (resume=auto finds <run_dir>/checkpoints/last.ckpt)")
    try:  # memory-mapped: only the small records are read here, Lightning reads the tensors once, later
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        raise UsageError(f"{path}: not a readable psfm checkpoint ({type(error).__name__}: {error})") from None
    hyper_parameters = checkpoint.get("hyper_parameters", {})
    if hyper_parameters.get("model") is None:
        raise UsageError(f"{path}: not a psfm pretraining checkpoint (no model hyperparameters)")
    model_changes = differences(hyper_parameters["model"], model, "model")
    if model_changes:
        raise UsageError(
            f"{path}: made with a different model configuration ({'; '.join(model_changes)}); "
            "use a new run_dir, or resume=never to start over"
        )
    # checkpoints from before the settings were stored still hold the optimizer's in their hyperparameters
    stored = checkpoint.get(SETTINGS_KEY) or {"optim": hyper_parameters.get("optim", {})}
    defaults = defaults or {}
    changes = [
        change
        for section in stored
        for change in differences(stored[section], settings.get(section), section, defaults.get(section))
    ]
    if changes and not force:
        raise UsageError(
            f"{path}: made with other settings ({'; '.join(changes)}); resume=force resumes "
            "<run_dir>/checkpoints/last.ckpt anyway, resume=never starts over, or use a new run_dir"
        )
    return changes


def differences(old: Any, new: Any, prefix: str, defaults: Any = None) -> list[str]:
    """Every leaf that differs between two nested dicts, as ``key: old in the checkpoint, new now``.

    A key missing from ``old`` is no difference when ``new`` holds its value in ``defaults``: a setting
    added since the checkpoint was made, left at the default that keeps the old behaviour.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        defaults = defaults if isinstance(defaults, dict) else {}
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in old and key in defaults and _same(defaults[key], new.get(key)):
                continue
            changes += differences(old.get(key), new.get(key), f"{prefix}.{key}", defaults.get(key))
        return changes
    return [] if _same(old, new) else [f"{prefix}: {old!r} in the checkpoint, {new!r} now"]


def _same(old: Any, new: Any) -> bool:
    """Equal, a list and a tuple of the same items too (YAML gives lists where dataclasses hold tuples)."""
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        old, new = list(old), list(new)
    return old == new
