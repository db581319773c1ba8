"""``psfm shards``: verify a shard set, summarize it, and stream batches through the loader."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.inspect import inspect_shards
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.skips import NoUsableScenesError
from psfm.datamodules.writer import MANIFEST_NAME, verify_shards
from psfm.errors import UsageError
from psfm.typed_config import to_command

log = logging.getLogger("psfm.shards")


@dataclass
class ShardsCommand:
    """Schema of ``configs/shards.yaml``."""

    data: str = "data/world/train"
    verify: bool = True  # re-hash shards against the manifest and decode every image
    batches: int = 8  # batches streamed through the training loader (0 = skip)
    datamodule: DataModuleConfig = field(default_factory=DataModuleConfig)


ConfigStore.instance().store(name="shards_schema", node=ShardsCommand)


def _summary_table(data: str, report, problems: list[str]) -> Table:
    table = Table(title=f"shards: {data}", show_header=False)
    table.add_row("scenes in manifest", "-" if report.manifest_scenes is None else str(report.manifest_scenes))
    table.add_row("scenes read", str(report.scenes))
    table.add_row("views", f"{report.views} ({dict(sorted(report.views_per_scene.items()))} views/scene)")
    table.add_row("image sizes", ", ".join(f"{size} x{n}" for size, n in report.image_sizes.items()))
    table.add_row("pose sources", ", ".join(f"{source} x{n}" for source, n in report.pose_sources.items()))
    table.add_row("with depth / masks", f"{report.with_depth} / {report.with_mask}")
    table.add_row("objects", ", ".join(f"{name} x{n}" for name, n in report.categories.most_common()) or "-")
    table.add_row("scenes skipped", f"{report.skipped} {dict(report.skip_reasons) if report.skipped else ''}")
    if report.unaccounted:
        table.add_row("unaccounted", f"[red]{report.unaccounted} (manifest - read - skipped)")
    table.add_row("checksums", "ok" if not problems else f"[red]{len(problems)} problem(s)")
    return table


def run(cfg: DictConfig | ShardsCommand) -> dict[str, float | None]:
    """Returns counts (``manifest_scenes`` is None without a manifest) and loader throughput (scenes/s, views/s)."""
    command: ShardsCommand = to_command(cfg)
    console = Console()
    shards = resolve_shards(command.data, key="data")
    problems = verify_shards(command.data) if command.verify and (Path(command.data) / MANIFEST_NAME).exists() else []
    for problem in problems:
        log.error(problem)
    report = inspect_shards(shards.urls, decode=command.verify, scene_counts=shards.scene_counts)
    console.print(_summary_table(command.data, report, problems))
    metrics = {
        "scenes": report.scenes,
        "skipped": report.skipped,
        "manifest_scenes": report.manifest_scenes,
        "unaccounted": report.unaccounted,
        "checksum_problems": len(problems),
        **{f"skipped/{reason}": count for reason, count in report.skip_reasons.items()},
    }
    if command.batches > 0:
        command.datamodule.train = command.data
        loader = SceneDataModule(command.datamodule).train_dataloader()
        scenes = views = 0
        start = time.perf_counter()
        for index, batch in enumerate(loader):
            if index == 0:
                console.print(
                    f"first batch: images {tuple(batch.images.shape)}, intrinsics {tuple(batch.intrinsics.shape)}, "
                    f"cam_to_world {tuple(batch.cam_to_world.shape)}, context {tuple(batch.context_index.shape)}, "
                    f"target {tuple(batch.target_index.shape)}, scenes {batch.scene_keys[:2]}..."
                )
            scenes += batch.batch_size
            views += batch.batch_size * batch.num_views
            if index + 1 >= command.batches:
                break
        seconds = time.perf_counter() - start
        metrics.update(loader_scenes_per_second=scenes / seconds, loader_views_per_second=views / seconds)
        console.print(
            f"loader: {scenes} scenes / {views} views in {seconds:.2f}s "
            f"({scenes / seconds:.1f} scenes/s, {views / seconds:.1f} views/s, "
            f"{command.datamodule.num_workers} workers, worker start-up included)"
        )
    return metrics


@hydra.main(config_path="pkg://psfm.configs", config_name="shards", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        metrics = run(cfg)
        if metrics["skipped"] or metrics["unaccounted"] or metrics["checksum_problems"]:
            raise SystemExit(1)
    except (UsageError, NoUsableScenesError) as error:
        raise SystemExit(f"psfm shards: {error}") from None
