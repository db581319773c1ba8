"""``psfm probe``: what frozen encoders know about 3D, against baselines, as a report with figures."""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from psfm.probes.report import headline, write_report
from psfm.probes.run import ProbeCommand, ProbeReport, run_probes, score_table
from psfm.typed_config import UnknownConfigKeyError, to_command

log = logging.getLogger("psfm.probe")

ConfigStore.instance().store(name="probe_schema", node=ProbeCommand)

LIST_KEYS = ("export=", "names=")


def quote_lists(argv: list[str], keys: tuple[str, ...] = LIST_KEYS) -> list[str]:
    """``export=a,b`` means a list of exports here, not a Hydra sweep: pass it on as one quoted string."""
    quoted = []
    for arg in argv:
        if arg.startswith(keys) and "," in arg and not arg.split("=", 1)[1].startswith(("'", '"', "[")):
            key, value = arg.split("=", 1)
            arg = f"{key}='{value}'"
        quoted.append(arg)
    return quoted


def console_table(report: ProbeReport) -> Table:
    header, rows = score_table(report)
    table = Table(title="psfm probe (held-out scenes)")
    for column in header:
        table.add_column(column, justify="left" if column == header[0] else "right")
    for row in rows:
        table.add_row(*row)
    return table


def run(cfg: DictConfig | ProbeCommand) -> ProbeReport:
    command: ProbeCommand = to_command(cfg)
    report = run_probes(command)
    path = write_report(report, command.out, figures=command.figures)
    console = Console()
    console.print(console_table(report))
    for probe, metric, mine, theirs, ratio in headline(report):
        console.print(
            f"{report.sources[0]} / random_init  {probe} · {metric}: {mine:.3f} / {theirs:.3f} = {ratio:.2f}x"
        )
    for name, why in report.skipped.items():
        console.print(f"[yellow]skipped {name}: {why}")
    console.print(f"report: {path}")
    return report


@hydra.main(config_path="pkg://psfm.configs", config_name="probe", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except UnknownConfigKeyError as error:
        raise SystemExit(f"psfm probe: {error}") from None
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"psfm probe: {error}") from None


def main() -> None:
    sys.argv = [sys.argv[0], *quote_lists(sys.argv[1:])]
    _hydra_main()
