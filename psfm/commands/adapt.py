"""``psfm adapt``: train the adapter (and what else is chosen) of a VLM on spatial QA, answer held-out
questions, score them; or, with ``compare=``, put finished arms side by side."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from rich.console import Console

from psfm.adapters.run import AdaptCommand
from psfm.commands.probe import quote_lists
from psfm.typed_config import UnknownConfigKeyError, to_command

log = logging.getLogger("psfm.adapt")

ConfigStore.instance().store(name="adapt_schema", node=AdaptCommand)


def run(cfg: DictConfig | AdaptCommand) -> dict | str:
    command: AdaptCommand = to_command(cfg)
    console = Console()
    if command.compare:
        from psfm.adapters.compare import compare_arms

        runs = [run.strip() for run in command.compare.split(",") if run.strip()]
        names = [name.strip() for name in command.names.split(",")] if command.names else None
        path = compare_arms(runs, names, command.out)
        console.print(path.read_text())
        console.print(f"report: {path}")
        return str(path)
    from psfm.adapters.run import run_adapt

    metrics = run_adapt(command)
    console.print((Path(command.out) / "report.md").read_text())
    return metrics


@hydra.main(config_path="pkg://psfm.configs", config_name="adapt", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except UnknownConfigKeyError as error:
        raise SystemExit(f"psfm adapt: {error}") from None
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"psfm adapt: {error}") from None


def main() -> None:
    sys.argv = [sys.argv[0], *quote_lists(sys.argv[1:], keys=("compare=", "names="))]
    _hydra_main()
