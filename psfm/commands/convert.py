"""``psfm convert <format>``: a real capture (transforms.json, COLMAP, ScanNet, image folder, video) or scene
annotation files (oriented boxes) into shards."""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, fields

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from psfm.converters.base import CONVERTERS, ConversionReport, convert, converter
from psfm.converters.options import ConvertOptions
from psfm.errors import UsageError, require_at_least
from psfm.typed_config import to_command

log = logging.getLogger("psfm.convert")
SHOWN_PROBLEMS = 5


@dataclass
class ConvertCommand(ConvertOptions):
    """Schema of ``configs/convert.yaml``: where from and to, then the converter options (``ConvertOptions``)."""

    format: str | None = None  # transforms | colmap | scannet | images | video | boxes (or the first word)
    input: str | None = None  # one capture folder (or video file), or a folder of them (one scene each)
    out: str | None = None  # shard folder (created; re-running resumes)
    workers: int = 1
    samples_per_shard: int = 16
    progress: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least(1, "", workers=self.workers, samples_per_shard=self.samples_per_shard)


ConfigStore.instance().store(name="convert_schema", node=ConvertCommand)


def _summary(command: ConvertCommand, report: ConversionReport) -> Table:
    table = Table(title=f"convert {command.format}: {command.input} -> {command.out}", show_header=False)
    table.add_row(
        "scenes", f"{report.scenes_found} found, {report.written} written, {report.already_done} already there"
    )
    table.add_row("views written", str(report.views))
    scenes = ", ".join(f"{reason} x{count}" for reason, count in report.skipped_scenes.most_common())
    frames = ", ".join(f"{reason} x{count}" for reason, count in report.skipped_frames.most_common())
    table.add_row("scenes skipped", scenes or "0")
    table.add_row("frames skipped", frames or "0")
    for problem in report.problems[:SHOWN_PROBLEMS]:
        table.add_row("", f"[yellow]{problem}")
    if len(report.problems) > SHOWN_PROBLEMS:
        table.add_row("", f"... {len(report.problems) - SHOWN_PROBLEMS} more in the log above")
    rate = "" if math.isnan(report.seconds_per_100_views) else f", {report.seconds_per_100_views:.1f} s per 100 views"
    table.add_row("time", f"{report.seconds:.1f} s{rate}")
    return table


def run(cfg: DictConfig | ConvertCommand) -> dict[str, float]:
    """Convert ``input`` into ``out``; returns counts (scenes, views, skips by reason) and the rate."""
    command: ConvertCommand = to_command(cfg)
    if command.format is None:
        raise UsageError(f"name a format: psfm convert {{{'|'.join(CONVERTERS)}}} input=CAPTURE out=SHARDS")
    converter(command.format)  # an unknown format is named before anything else
    for key in ("input", "out"):
        if getattr(command, key) is None:
            raise UsageError(f"{key}= is required: psfm convert {command.format} input=CAPTURE out=SHARDS")
    options = ConvertOptions(**{item.name: getattr(command, item.name) for item in fields(ConvertOptions)})
    report = convert(
        command.format,
        command.input,
        command.out,
        options,
        samples_per_shard=command.samples_per_shard,
        workers=command.workers,
        progress=command.progress,
    )
    Console().print(_summary(command, report))
    return {
        "scenes_found": report.scenes_found,
        "written": report.written,
        "already_done": report.already_done,
        "views": report.views,
        "seconds_per_100_views": report.seconds_per_100_views,
        **{f"skipped_scenes/{reason}": count for reason, count in report.skipped_scenes.items()},
        **{f"skipped_frames/{reason}": count for reason, count in report.skipped_frames.items()},
    }


@hydra.main(config_path="pkg://psfm.configs", config_name="convert", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        metrics = run(cfg)
    except (UsageError, ValueError) as error:  # ValueError: the writer refusing a folder made with other options
        raise SystemExit(f"psfm convert: {error}") from None
    if metrics["written"] + metrics["already_done"] == 0:
        raise SystemExit(1)


def main() -> None:
    """``psfm convert colmap input=...``: the first word, when it is not an override or a flag, is ``format=``."""
    if len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        sys.argv[1] = f"format={sys.argv[1]}"
    _hydra_main()
