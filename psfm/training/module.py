"""``PretrainModule``: the thin Lightning wrapper around ``PretrainModel`` (optimizer, logging, faults, FSDP2)."""

from __future__ import annotations

import logging
import random
import time

import lightning as L
import torch
from omegaconf import OmegaConf
from timm.models.vision_transformer import Block as TimmBlock

from psfm.layers.transformer import Block
from psfm.training.config import ModelConfig, OptimConfig
from psfm.training.model import PretrainModel
from psfm.training.optim import build_optimizer
from psfm.types import MultiViewBatch

log = logging.getLogger("psfm.pretrain")

# the units FSDP2 shards and torch.compile compiles: ours and timm's backbone blocks
TRANSFORMER_BLOCKS = (Block, TimmBlock)


class NonFiniteLossError(RuntimeError):
    """Raised after too many consecutive steps whose loss was NaN or infinite."""


class PretrainModule(L.LightningModule):
    """Args:
    model: ``ModelConfig`` (stored as plain hyperparameters, so checkpoints load with ``weights_only``).
    optim: ``OptimConfig``.
    total_steps: optimizer steps of the whole run (the cosine schedule and EMA momentum span it).
    max_nan_steps: consecutive non-finite losses tolerated; each such step is skipped and counted.
    compile: ``torch.compile`` every transformer block in place (parameter names unchanged).
    """

    # Lightning's save_hyperparameters() reads __init__'s arguments from the calling frame, which mutmut's
    # trampoline (benchmarks/mutation.sh) replaces: checkpoints would lose their hyper_parameters
    # pragma: no mutate start
    def __init__(self, model: dict, optim: dict, total_steps: int, max_nan_steps: int = 5, compile: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.model_config = _to_config(ModelConfig, model)
        self.optim_config = _to_config(OptimConfig, optim)
        self.total_steps, self.max_nan_steps, self.compile_blocks = total_steps, max_nan_steps, compile
        self.model = PretrainModel(self.model_config, total_steps=total_steps)
        self.consecutive_nan_steps = 0
        self.nan_steps = 0
        self._step_started = None
        self._teachers_at_step = 0  # the global step the EMA teachers last followed (set again at train start)
        self._finite_since_step = False  # a micro-batch since then had a finite loss (so the weights moved)

    # pragma: no mutate end

    # FSDP2 (Lightning's ModelParallelStrategy calls this): shard every trainable transformer block, then the
    # encoder and the objective; frozen teachers stay whole on every rank
    def configure_model(self) -> None:
        if self.device_mesh is not None:
            self._shard()
        if self.compile_blocks:
            for module in self.model.modules():
                if isinstance(module, TRANSFORMER_BLOCKS):
                    module.compile()

    def _shard(self) -> None:
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        # the units FSDP2 all-gathers are the modules *called*: backbone and latent encoder (the objective
        # calls them separately, never SpatialEncoder.forward) and the objective; teachers stay whole
        encoder = self.model.encoder
        for part in (encoder.backbone, encoder.latent, self.model.objective):
            for module in part.modules():
                if isinstance(module, TRANSFORMER_BLOCKS) and any(p.requires_grad for p in module.parameters()):
                    fully_shard(module, mesh=mesh)
            fully_shard(part, mesh=mesh)

    def configure_optimizers(self):
        optimizer, schedule = build_optimizer(self.model.trainable_parameters(), self.optim_config, self.total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip the gradient norm of each of ``PretrainModel.clip_groups`` to ``gradient_clip_val`` on its own.

        With ``optim.grad_clip_mode=global`` one norm over every trainable parameter is clipped instead
        (Spa3R's recipe; the depth probe then shares it, see ``PretrainModel.clip_groups``). Logs each
        group's norm before clipping (``train/grad_norm/<group>``, ``train/grad_norm/global``). Always
        norm clipping (``optim.grad_clip``); Lightning has already unscaled fp16 gradients when it calls this hook.
        """
        if not gradient_clip_val:
            return
        groups = self.model.clip_groups()
        if self.optim_config.grad_clip_mode == "global":
            groups = {"global": [param for params in groups.values() for param in params]}
        for name, params in groups.items():
            norm = torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            self.log(f"train/grad_norm/{name}", norm, on_step=True, on_epoch=False)

    # steps -----------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self._teachers_at_step = self.global_step  # after a resume: the restored step, not 0

    def on_train_batch_start(self, batch: MultiViewBatch, batch_idx: int) -> None:
        self._step_started = time.perf_counter()

    def training_step(self, batch: MultiViewBatch, batch_idx: int):
        out = self.model(batch)
        finite = self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(out["loss"])), all=True)
        if not finite:  # every rank skips together, so DDP/FSDP never wait on a missing all-reduce
            self.consecutive_nan_steps += 1
            self.nan_steps += 1
            self.log("train/nan_steps", float(self.nan_steps), batch_size=batch.batch_size)
            log.warning(  # a count alone leaves a person to bisect the data for the scene that did it
                "non-finite loss at global step %d (rank %d): step skipped; its scenes: %s",
                self.global_step,
                self.global_rank,
                ", ".join(batch.scene_keys) or "(unnamed)",
            )
            if self.consecutive_nan_steps >= self.max_nan_steps:
                raise NonFiniteLossError(
                    f"the loss was NaN/inf on {self.consecutive_nan_steps} consecutive steps (global step "
                    f"{self.global_step}, scenes {batch.scene_keys}); lower optim.lr, check the data with "
                    "`psfm shards`, or raise trainer.max_nan_steps"
                )
            return None
        self.consecutive_nan_steps = 0
        self._finite_since_step = True
        self._log_parts("train", out, batch)
        return out["loss"]

    def on_train_batch_end(self, outputs, batch: MultiViewBatch, batch_idx: int) -> None:
        self._follow_optimizer_step()
        if self._step_started is not None:
            seconds = time.perf_counter() - self._step_started
            views = batch.batch_size * batch.num_views * self.trainer.world_size
            self.log("views_per_s", views / max(seconds, 1e-9), prog_bar=True, batch_size=batch.batch_size)

    def _follow_optimizer_step(self) -> None:
        """Update the EMA teachers once per optimizer step that trained on at least one finite loss.

        The test is "did ``global_step`` advance since the last update": Lightning advances it exactly
        once per optimizer step, after the step, whatever the accumulation, precision plugin or strategy.
        Hooks tied to the optimizer are less robust: ``on_before_zero_grad`` runs at the *start* of an
        accumulation window (so never after the last step), and the ``optimizer_step`` hook runs on
        every micro-batch under strategies that accumulate themselves (DeepSpeed). A step whose
        micro-batches all had a non-finite loss (``training_step`` returned None) left the student
        unchanged, so the teachers skip it too: the momentum is per real update (m, not m^k under
        accumulation over k).
        """
        if self.global_step == self._teachers_at_step:
            return  # still accumulating micro-batches of this step
        if self._finite_since_step:
            self.model.update_teachers(self.global_step)
        self._teachers_at_step, self._finite_since_step = self.global_step, False

    def validation_step(self, batch: MultiViewBatch, batch_idx: int) -> None:
        self._log_parts("val", self.model(batch), batch, sync_dist=True)

    def _log_parts(self, stage: str, out: dict[str, torch.Tensor], batch: MultiViewBatch, sync_dist=False) -> None:
        on_step = stage == "train"
        for name, value in out.items():
            self.log(
                f"{stage}/{name}",
                value.detach().float(),
                prog_bar=name == "loss",
                on_step=on_step,
                on_epoch=not on_step,
                batch_size=batch.batch_size,
                sync_dist=sync_dist,
            )

    # exact resume: Lightning restores model, optimizer, scheduler, loops and (through the
    # datamodule's state) the data position; the global RNG states travel here
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store every rank's RNG states: they part after the first step (each rank jitters its own views,
        as many as its batch has), and giving every rank rank 0's states on resume changed the weights."""
        checkpoint["rng"] = _rng_state()  # rank 0's, as before: what a resume with another world size uses
        if self.trainer.world_size > 1:  # every rank saves (the strategy writes rank 0's dict), so all gather
            states = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(states, checkpoint["rng"])
            checkpoint["rng_per_rank"] = states
        checkpoint["nan_steps"] = self.nan_steps

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rng")
        per_rank = checkpoint.get("rng_per_rank")
        if per_rank and len(per_rank) == self.trainer.world_size:
            state = per_rank[self.trainer.global_rank]
        if state:
            torch.set_rng_state(state["torch"])
            random.setstate((3, tuple(state["python"]), None))
            if state["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])
        self.nan_steps = checkpoint.get("nan_steps", 0)


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _to_config(schema, values):
    """Plain dict (as stored in a checkpoint) -> the typed dataclass, refusing unknown keys."""
    if isinstance(values, schema):
        return values
    merged = OmegaConf.merge(OmegaConf.structured(schema), values)
    return OmegaConf.to_object(merged)
