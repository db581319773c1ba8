"""``psfm qa``: generate templated spatial questions with exact answers for a scene-shard set."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from psfm.datamodules.shardlists import resolve_shards
from psfm.qa.config import GenerationConfig
from psfm.qa.dataset import QAReport, build_qa_dataset
from psfm.qa.lifting.config import LiftingConfig
from psfm.qa.lifting.depth import load_depth_model
from psfm.typed_config import to_command

log = logging.getLogger("psfm.qa")

DEFAULT_DATA = "data/world/val"


@dataclass
class QACommand:
    """Schema of ``configs/qa.yaml``; a misspelled key fails at compose time with its name."""

    data: str = DEFAULT_DATA
    out: str = "data/qa/val"
    facts: str = "gt"  # gt: the scene's annotated boxes | lifted: boxes estimated from depth + masks
    boxes: str | None = None  # facts=gt: folder of <scene_id>.json box files replacing meta.json objects
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    lifting: LiftingConfig = field(default_factory=LiftingConfig)
    depth_model: str | None = None  # facts=lifted: "package.module:factory" of a local metric depth model
    samples_per_shard: int = 32
    images: bool = True  # copy view images next to the JSONL exports
    max_scenes: int = 0  # 0 = every scene
    overwrite: bool = False
    progress: bool = True


ConfigStore.instance().store(name="qa_schema", node=QACommand)


def _summary(command: QACommand, report: QAReport) -> Table:
    table = Table(title=f"qa: {command.data} -> {command.out} (facts: {command.facts})", show_header=False)
    table.add_row("scenes", f"{report.scenes} written, {report.scenes_skipped} skipped")
    table.add_row(
        "questions",
        f"{report.questions} ({report.questions_per_second:.0f} questions/s generation, "
        f"{report.seconds:.1f} s end to end)",
    )
    table.add_row("formats", ", ".join(f"{k} x{v}" for k, v in sorted(report.formats.items())) or "-")
    table.add_row("tasks", ", ".join(f"{k} x{v}" for k, v in sorted(report.tasks.items())) or "-")
    table.add_row("answers", ", ".join(f"{k} x{v}" for k, v in sorted(report.answers.items())) or "-")
    objects = {key.removeprefix("objects/"): n for key, n in report.facts.objects.items()}
    table.add_row("objects", ", ".join(f"{k} x{v}" for k, v in sorted(objects.items())) or "-")
    table.add_row("floors, rooms", f"floor from {dict(report.facts.floors)}; room from {dict(report.facts.rooms)}")
    for note in report.facts.notes():
        table.add_row("note", f"[yellow]{note}")
    reasons = report.skips.counts.most_common(12)
    more = len(report.skips.counts) - len(reasons)
    table.add_row(
        "skipped (reason x count)",
        "\n".join(f"{k} x{v}" for k, v in reasons) + (f"\n... {more} more in summary.json" if more > 0 else "") or "-",
    )
    return table


def _missing_data_message(data: str) -> str:
    hint = (
        "it is the embedded world's val split: make it with `psfm world` (writes data/world/{train,val})"
        if data == DEFAULT_DATA
        else "pass data=FOLDER|GLOB of scene shards (`psfm world` makes the embedded world's)"
    )
    return f"{data}: no scene shards there; {hint}"


def run(cfg: DictConfig | QACommand) -> dict[str, float]:
    """Build the QA dataset; returns counts and the generation rate (questions/s) for tests and logs.

    Raises:
        FileNotFoundError: no shards at ``data`` (the message says how to make them).
        FileExistsError: ``out`` holds a previous run and ``overwrite`` is false.
    """
    command: QACommand = to_command(cfg)
    if not any(ch in command.data for ch in "*?{:") and not Path(command.data).exists():
        raise FileNotFoundError(_missing_data_message(command.data))
    shards = resolve_shards(command.data)
    report = build_qa_dataset(
        shards.urls,
        command.out,
        command.generation,
        command.lifting,
        facts=command.facts,
        samples_per_shard=command.samples_per_shard,
        images=command.images,
        max_scenes=command.max_scenes,
        overwrite=command.overwrite,
        progress=command.progress,
        total=shards.num_samples,
        depth_model=load_depth_model(command.depth_model) if command.depth_model else None,
        boxes=command.boxes,
    )
    Console().print(_summary(command, report))
    log.info("wrote %s/questions.jsonl, lmms_eval.jsonl, lmms_eval/, shards/ and summary.json", command.out)
    return {
        "scenes": report.scenes,
        "scenes_skipped": report.scenes_skipped,
        "questions": report.questions,
        "questions_per_second": report.questions_per_second,
        "skipped_candidates": report.skips.total(),
    }


@hydra.main(config_path="pkg://psfm.configs", config_name="qa", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        metrics = run(cfg)
    except (FileNotFoundError, FileExistsError, ValueError) as error:  # SchemaError names the file and field
        raise SystemExit(f"psfm qa: {error}") from None
    if metrics["questions"] == 0:
        raise SystemExit(
            f"psfm qa: no question from {metrics['scenes']} scene(s) ({metrics['scenes_skipped']} skipped): "
            "the skip reasons above and in summary.json say why"
        )
