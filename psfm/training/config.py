"""Typed schemas of ``psfm pretrain``'s config (Hydra ConfigStore), so a misspelled key fails with its name.

Groups mirror the packages: ``model.backbone`` (``psfm.encoders.backbones``), ``model.encoder``
(``psfm.encoders.latent``), ``model.objective`` (``psfm.objectives``), ``model.teachers``
(``psfm.teachers``), ``optim``, ``trainer``, ``logger`` and ``datamodule``. ``BackboneConfig`` and
``EncoderConfig`` live in ``psfm.encoders.config`` (``psfm.load`` rebuilds exports from them without
the trainer) and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from psfm.datamodules.datamodule import DataModuleConfig
from psfm.encoders.config import BackboneConfig, EncoderConfig
from psfm.errors import UsageError, require_at_least
from psfm.probes.online import OnlineProbeConfig
from psfm.typed_config import to_command

__all__ = [
    "BackboneConfig",
    "DecoderConfig",
    "EncoderConfig",
    "LoggerConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "PretrainCommand",
    "TeacherConfig",
    "TrainerConfig",
    "command_from_config",
    "teacher_config",
]


@dataclass
class DecoderConfig:
    depth: int = 2
    num_heads: int = 4
    camera_encoding: str = "prope"
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    rope_base: float = 100.0


@dataclass
class ObjectiveConfig:
    """``psfm`` (cross-view field synthesis) or ``per_view`` (each view reconstructs itself: the baseline)."""

    name: str = "psfm"
    loss_views: str = "all"
    l1_weight: float = 1.0
    cosine_weight: float = 1.0
    target_norm: str = "layernorm"
    depth_probe: bool = True
    # ``depth``: an ablation that shows the encoder true depth (psfm.encoders.inputs; the export records it)
    context_input: str = "images"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)


@dataclass
class TeacherConfig:
    """A registered teacher (``pixels``, ``ema``, ``timm``, ``efficientnet_lite0``, ``module``).

    ``weight`` scales its loss; ``options`` go to its builder.
    """

    name: str = "pixels"
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


def teacher_config(name: str, value: Any) -> TeacherConfig:
    """A ``model.teachers`` entry as a ``TeacherConfig``, refusing unknown keys by name."""
    if isinstance(value, TeacherConfig):
        return value
    unknown = set(value) - {"name", "weight", "options"}
    if unknown:
        raise UsageError(f"model.teachers.{name}: unknown key(s) {sorted(unknown)} (allowed: name, weight, options)")
    return TeacherConfig(**{key: dict(v) if key == "options" else v for key, v in value.items()})


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    # name -> TeacherConfig fields; kept untyped so `+model.teachers.NAME.name=...` works on the command
    # line, and checked against TeacherConfig when the model is built (unknown keys fail by name)
    teachers: dict[str, Any] = field(default_factory=dict)
    attention: str = "auto"  # auto | sdpa | xformers


@dataclass
class OptimConfig:
    """AdamW with linear warmup then per-step cosine decay to ``min_lr_ratio · lr``.

    ``decay_all``: weight decay on every trainable parameter (torch's AdamW default, Spa3R's recipe);
    false exempts biases, norms, learned tokens and position embeddings. ``grad_clip_mode``:
    ``per_group`` clips each of ``PretrainModel.clip_groups`` (model, detached depth probe) on its
    own; ``global`` clips one norm over all trainable parameters (Spa3R's).
    """

    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    decay_all: bool = False
    grad_clip_mode: str = "per_group"  # per_group | global

    def __post_init__(self) -> None:
        require_at_least(0, "optim", warmup_steps=self.warmup_steps)
        if self.grad_clip_mode not in ("per_group", "global"):
            raise UsageError(f"optim.grad_clip_mode must be 'per_group' or 'global', got {self.grad_clip_mode!r}")


@dataclass
class TrainerConfig:
    """Lightning Trainer settings. ``strategy``: auto | ddp | ddp_spawn | fsdp2 | deepspeed... (Lightning names).

    ``precision: auto`` is bf16-mixed on CUDA and 32-true on CPU. ``max_nan_steps``: consecutive
    non-finite losses tolerated (each skipped and counted) before the run stops.
    """

    max_steps: int = 200
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    accumulate_grad_batches: int = 1
    compile: bool = False
    val_every_steps: int = 100
    limit_val_batches: int = 8
    checkpoint_every_steps: int = 50
    log_every_steps: int = 10
    deterministic: bool = False
    max_nan_steps: int = 5
    progress_bar: bool = True

    def __post_init__(self) -> None:
        steps = {"max_steps": self.max_steps, "val_every_steps": self.val_every_steps}
        require_at_least(1, "trainer", **steps, log_every_steps=self.log_every_steps, num_nodes=self.num_nodes)
        require_at_least(1, "trainer", accumulate_grad_batches=self.accumulate_grad_batches)
        # 0 means something for these: only the final checkpoint, no validation, stop at the first NaN
        optional = {"checkpoint_every_steps": self.checkpoint_every_steps, "limit_val_batches": self.limit_val_batches}
        require_at_least(0, "trainer", **optional, max_nan_steps=self.max_nan_steps)


@dataclass
class LoggerConfig:
    """CSV logs always; wandb ``offline`` (default: no account, ``wandb sync`` later), ``online`` or ``disabled``."""

    wandb: str = "offline"
    project: str = "psfm"


@dataclass
class PretrainCommand:
    """Schema of ``configs/pretrain.yaml``."""

    experiment: str = "world_tiny"
    run_dir: str = "outputs/pretrain/world_tiny"
    # auto (run_dir's last.ckpt if present) | force (the same, other optimizer/data settings accepted) | never | PATH
    resume: str = "auto"
    seed: int = 0
    export: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    datamodule: DataModuleConfig = field(default_factory=DataModuleConfig)
    online_probe: OnlineProbeConfig = field(default_factory=OnlineProbeConfig)  # psfm.probes.online


def command_from_config(cfg: DictConfig) -> PretrainCommand:
    """The composed Hydra config as a typed ``PretrainCommand``, refusing keys the schema lacks."""
    return to_command(cfg)
