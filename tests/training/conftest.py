"""A tiny real world (32x32 renders) and tiny pretraining configs shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from psfm.datamodules.datamodule import DataModuleConfig
from psfm.datamodules.views import ViewSampling
from psfm.training.config import (
    BackboneConfig,
    DecoderConfig,
    EncoderConfig,
    LoggerConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    PretrainCommand,
    TeacherConfig,
    TrainerConfig,
)
from psfm.worlds.generate import generate_world
from psfm.worlds.sampler import WorldConfig


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    config = WorldConfig(views_per_scene=6, height=32, width=32)
    generate_world(root / "train", config, 24, "train", samples_per_shard=6, progress=False)
    generate_world(root / "val", config, 6, "val", samples_per_shard=6, progress=False)
    return root


def tiny_command(world: Path, run_dir: Path, max_steps: int = 6, **trainer) -> PretrainCommand:
    """Every part at its smallest: 32 px, 2x2 patches, 1-layer nets, 4 latents; wandb off, no progress bar."""
    return PretrainCommand(
        experiment="test",
        run_dir=str(run_dir),
        model=ModelConfig(
            backbone=BackboneConfig(name="vit_test", img_size=32, overrides={"depth": 1, "embed_dim": 32}),
            encoder=EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1),
            objective=ObjectiveConfig(decoder=DecoderConfig(depth=1, num_heads=2)),
            teachers={"pixels": TeacherConfig("pixels")},
        ),
        optim=OptimConfig(lr=1e-3, warmup_steps=2),
        trainer=TrainerConfig(
            **{
                "max_steps": max_steps,
                "accelerator": "cpu",
                "devices": 1,
                "val_every_steps": 3,
                "limit_val_batches": 2,
                "checkpoint_every_steps": 2,
                "log_every_steps": 1,
                "deterministic": True,
                "progress_bar": False,
                **trainer,
            }
        ),
        logger=LoggerConfig(wandb="disabled"),
        datamodule=DataModuleConfig(
            train=str(world / "train"),
            val=str(world / "val"),
            batch_size=2,
            num_workers=0,
            image_size=[32, 32],
            views=ViewSampling(min_views=3, max_views=4),
            shuffle_buffer=4,
            load_depth=True,
        ),
    )
