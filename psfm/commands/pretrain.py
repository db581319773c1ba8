"""``psfm pretrain``: Hydra entry point around ``psfm.training.train``."""

from __future__ import annotations

import logging

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from psfm.datamodules.datamodule import ResumeMismatchError
from psfm.datamodules.skips import NoUsableScenesError
from psfm.errors import UsageError
from psfm.training.config import PretrainCommand
from psfm.training.train import train

log = logging.getLogger("psfm.pretrain")

ConfigStore.instance().store(name="pretrain_schema", node=PretrainCommand)


def summary_table(metrics: dict[str, float]) -> Table:
    """Final metrics, with each teacher's unseen-view loss beside its two non-learned references.

    ``data/`` keys are shown too: scenes skipped in the last epoch and since the run began, so data lost to
    corruption is in front of the person reading the result, not only in the logs.
    """
    table = Table(title="pretrain: final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    shown = ("val/", "train/loss", "data/", "global_step", "seconds", "nan_steps")
    for key in sorted(metrics):
        if key.startswith(shown) and not key.endswith("_step"):
            table.add_row(key, f"{metrics[key]:.4f}" if metrics[key] % 1 else f"{metrics[key]:.0f}")
    return table


def run(cfg: DictConfig) -> dict[str, float]:
    metrics = train(cfg)
    Console().print(summary_table(metrics))
    return metrics


@hydra.main(config_path="pkg://psfm.configs", config_name="pretrain", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (UsageError, NoUsableScenesError, ResumeMismatchError) as error:
        raise SystemExit(f"psfm pretrain: {error}") from None
