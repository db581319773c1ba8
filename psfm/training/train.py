"""``train(cfg) -> metrics``: the whole pretraining job, called by ``psfm pretrain`` and by tests alike."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from psfm.datamodules.callbacks import SkippedSamplesLogger
from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.shardlists import resolve_shards
from psfm.errors import MissingPathError
from psfm.export import export_encoder
from psfm.io import atomic_write_bytes, remove_stale_temporaries
from psfm.probes.online import OnlineProbe
from psfm.training.checkpointing import AtomicCheckpointIO, FinalCheckpoint, RunFolderCheckpoint
from psfm.training.config import PretrainCommand, TrainerConfig, command_from_config
from psfm.training.module import PretrainModule
from psfm.training.resume import (
    ResumeSettings,
    check_resumable,
    default_settings,
    find_checkpoint,
    resume_settings,
)

log = logging.getLogger("psfm.pretrain")


def build_strategy(config: TrainerConfig):
    """Lightning strategy by name; ``fsdp2`` is ``ModelParallelStrategy`` (FSDP2 ``fully_shard``, CPU or GPU)."""
    if config.strategy == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy

        return ModelParallelStrategy(save_distributed_checkpoint=False)
    return config.strategy


def build_loggers(command: PretrainCommand, run_dir: Path) -> list:
    loggers = [CSVLogger(save_dir=str(run_dir), name="csv")]  # a resumed run adds csv/version_N, never overwrites
    if command.logger.wandb != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        if command.logger.wandb not in ("offline", "online"):
            raise ValueError(f"logger.wandb must be offline, online or disabled, got {command.logger.wandb!r}")
        run_id = _stored_wandb_id(run_dir)
        logger = WandbLogger(
            project=command.logger.project,
            name=command.experiment,
            save_dir=str(run_dir),
            offline=command.logger.wandb == "offline",
            id=run_id,
            resume="allow",
        )
        loggers.append(logger)
    return loggers


def resume_from(command: PretrainCommand, run_dir: Path, settings: dict) -> str | None:
    """The checked checkpoint to resume (``psfm.training.resume``), or ``None`` to start over."""
    checkpoint = find_checkpoint(command, run_dir)
    if checkpoint is None:
        return None
    force = command.resume == "force"
    accepted = check_resumable(checkpoint, asdict(command.model), settings, force, defaults=default_settings())
    if accepted:
        log.warning("resume=force: resuming %s with other settings (%s)", checkpoint, "; ".join(accepted))
    log.info("resuming from %s", checkpoint)
    return str(checkpoint)


def build_callbacks(command: PretrainCommand, run_dir: Path, settings: dict) -> list:
    """Checkpointing (periodic last, final step, best val/loss), settings for resume, skip and lr logs, probe."""
    periodic = RunFolderCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=command.trainer.checkpoint_every_steps,
        save_top_k=0,
        save_last=True,
    )
    best = RunFolderCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss", mode="min", save_top_k=1
    )
    callbacks = [
        periodic,
        FinalCheckpoint(periodic),
        best,
        ResumeSettings(settings),
        SkippedSamplesLogger(),
        LearningRateMonitor(logging_interval="step"),
    ]
    if command.online_probe.every_steps and command.model.encoder.posed_context:
        log.warning("online_probe is off: a posed_context encoder needs camera rays the probes do not give it")
    elif command.online_probe.every_steps:
        data = command.datamodule
        input_kind = command.model.objective.context_input
        callbacks.append(OnlineProbe(command.online_probe, data.train, data.val, data.image_size, input_kind))
    if command.trainer.progress_bar:
        callbacks.append(RichProgressBar())
    return callbacks


def remove_torn_checkpoints(run_dir: Path) -> None:
    """Delete the temporaries of checkpoint saves that a kill interrupted (``AtomicFile`` names, ``.ckpt`` only)."""
    for stale in remove_stale_temporaries(run_dir / "checkpoints", of="*.ckpt"):
        log.warning("removed %s, left by a checkpoint save that was killed midway", stale)


def check_data(config: DataModuleConfig, validate: bool) -> None:
    """Resolve the shard sources now, so a missing or empty folder fails in one line before any model exists.

    Lightning would only open them inside ``trainer.fit``, and report it as a 46-line traceback.
    """
    default = DataModuleConfig()
    for split, source, default_source in (("train", config.train, default.train), ("val", config.val, default.val)):
        if not source or (split == "val" and not validate):
            continue
        try:
            resolve_shards(source, key=f"datamodule.{split}")
        except MissingPathError as error:
            hints = []
            if source == default_source:
                hints.append(f"run `psfm world` first (it writes {default.train} and {default.val})")
            if split == "val":
                hints.append("datamodule.val=null trains without validation")
            raise MissingPathError("; ".join([str(error), ", or ".join(hints)]) if hints else str(error)) from None


def train(cfg: DictConfig | PretrainCommand) -> dict[str, float]:
    """Pretrain, checkpoint, export the encoder; returns the final logged metrics (floats)."""
    command: PretrainCommand = command_from_config(cfg) if isinstance(cfg, DictConfig) else cfg
    has_val = bool(command.datamodule.val) and command.trainer.limit_val_batches > 0
    check_data(command.datamodule, validate=has_val)
    run_dir = Path(command.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(command.seed, workers=True, verbose=False)
    trainer_config = command.trainer
    settings = resume_settings(command)
    checkpoint = resume_from(command, run_dir, settings)

    datamodule = SceneDataModule(command.datamodule)
    module = PretrainModule(
        model=asdict(command.model),
        optim=asdict(command.optim),
        total_steps=trainer_config.max_steps,
        max_nan_steps=trainer_config.max_nan_steps,
        compile=trainer_config.compile,
    )
    precision = trainer_config.precision
    if precision == "auto":
        precision = "bf16-mixed" if torch.cuda.is_available() and trainer_config.accelerator != "cpu" else "32-true"
    trainer = L.Trainer(
        default_root_dir=str(run_dir),
        max_steps=trainer_config.max_steps,
        accelerator=trainer_config.accelerator,
        devices=trainer_config.devices,
        num_nodes=trainer_config.num_nodes,
        strategy=build_strategy(trainer_config),
        precision=precision,
        accumulate_grad_batches=trainer_config.accumulate_grad_batches,
        gradient_clip_val=command.optim.grad_clip or None,
        val_check_interval=min(trainer_config.val_every_steps, trainer_config.max_steps) if has_val else None,
        check_val_every_n_epoch=None,
        limit_val_batches=trainer_config.limit_val_batches if has_val else 0,
        num_sanity_val_steps=0,
        log_every_n_steps=trainer_config.log_every_steps,
        deterministic=trainer_config.deterministic,
        logger=build_loggers(command, run_dir),
        callbacks=build_callbacks(command, run_dir, settings),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=trainer_config.progress_bar,
        enable_model_summary=trainer_config.progress_bar,
    )
    if trainer.is_global_zero:
        remove_torn_checkpoints(run_dir)
        atomic_write_bytes(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(command)).encode())
        _remember_wandb_id(trainer, run_dir)
    start = time.perf_counter()
    failed = True
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
        failed = False
    finally:
        _finish_wandb(trainer, failed)
    seconds = time.perf_counter() - start
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
    metrics.update(
        global_step=float(trainer.global_step),
        seconds=seconds,
        nan_steps=float(module.nan_steps),
        world_size=float(trainer.world_size),
        global_rank=float(trainer.global_rank),
    )
    if command.export and command.model.encoder.posed_context:
        log.warning("not exported: a posed_context encoder (an ablation) cannot encode images alone")
    elif command.export:
        export_dir = run_dir / "export"
        model = command.model
        image_size = command.datamodule.image_size
        write = trainer.is_global_zero
        export_encoder(
            module.model.encoder,
            model.backbone,
            model.encoder,
            image_size,
            export_dir,
            write=write,
            input_kind=model.objective.context_input,
        )
        if write:
            log.info("exported the encoder to %s (load it with psfm.load)", export_dir)
    return metrics


def _remember_wandb_id(trainer: L.Trainer, run_dir: Path) -> None:
    """Keep the wandb run id beside the checkpoints, so a resumed job continues the same wandb run.

    The id is the started run's (``logger.experiment`` starts it, as the fit would): before that a new
    logger's ``version`` is None, which was written as "None" and then given to every resume as the id.
    """
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and _stored_wandb_id(run_dir) is None:
            atomic_write_bytes(run_dir / "wandb_id.txt", logger.experiment.id.encode())


def _finish_wandb(trainer: L.Trainer, failed: bool) -> None:
    """End the wandb run this job started. Lightning leaves it open, and a later ``WandbLogger`` in the same
    process reuses an open run: a second ``train`` (a sweep, a notebook, the tests) logged into the first
    job's run, in the first job's folder."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:  # started on this rank
            logger._experiment.finish(exit_code=1 if failed else 0)


def _stored_wandb_id(run_dir: Path) -> str | None:
    """The id in ``wandb_id.txt``; None when there is none, or when it is the "None" older psfm wrote there."""
    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.exists() else ""
    return run_id if run_id and run_id != "None" else None


os.environ.setdefault("WANDB_SILENT", "true")
