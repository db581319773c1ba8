"""``psfm world``: render the procedural multi-view world into train/val scene shards."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from psfm.errors import UsageError, require_at_least
from psfm.typed_config import to_command
from psfm.worlds.generate import generate_world
from psfm.worlds.sampler import WorldConfig

log = logging.getLogger("psfm.world")


@dataclass
class SplitSizes:
    """Scenes per split; 0 skips a split."""

    train: int = 512
    val: int = 64

    def __post_init__(self) -> None:
        require_at_least(0, "scenes", train=self.train, val=self.val)


@dataclass
class WorldCommand:
    """Schema of ``configs/world.yaml``; a misspelled key fails at compose time with its name."""

    out: str = "data/world"
    world: WorldConfig = field(default_factory=WorldConfig)
    scenes: SplitSizes = field(default_factory=SplitSizes)
    samples_per_shard: int = 32
    workers: int = 2
    image_format: str = "jpg"
    progress: bool = True

    def __post_init__(self) -> None:
        require_at_least(1, "", samples_per_shard=self.samples_per_shard, workers=self.workers)


ConfigStore.instance().store(name="world_schema", node=WorldCommand)


def run(cfg: DictConfig | WorldCommand) -> dict[str, float]:
    """Generate every split; returns scenes written and the rate, per split."""
    command: WorldCommand = to_command(cfg)
    world = WorldConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(command.world).items()})
    metrics = {}
    for split, count in vars(command.scenes).items():
        if count <= 0:
            continue
        report = generate_world(
            Path(command.out) / split,
            world,
            count,
            split=split,
            samples_per_shard=command.samples_per_shard,
            workers=command.workers,
            image_format=command.image_format,
            progress=command.progress,
        )
        log.info(
            "%s: %d scenes written (%d already there) in %.1fs, %.1f scenes/s",
            report.directory,
            report.written,
            report.already_done,
            report.seconds,
            report.scenes_per_second,
        )
        metrics[f"{split}/written"] = report.written
        metrics[f"{split}/scenes_per_second"] = report.scenes_per_second
    return metrics


@hydra.main(config_path="pkg://psfm.configs", config_name="world", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except UsageError as error:
        raise SystemExit(f"psfm world: {error}") from None
