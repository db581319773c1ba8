"""Build a spatial-QA dataset from scene shards: facts per scene, questions, QA shards and exports.

out/shards/            the scenes again (same members), meta.json carrying "qa" (via ShardWriter)
out/questions.jsonl    chat-message format, one question per line (psfm.qa.export)
out/lmms_eval.jsonl    lmms-eval-style rows
out/lmms_eval/         an lmms-eval task over them (psfm_spatial.yaml + utils.py, psfm.qa.lmms_task)
out/vsibench.jsonl     the VSI-Bench questions alone, in VSI-Bench's columns (psfm.qa.vsibench)
out/images/<key>/      the view images the exports point at (bytes as stored in the shards)
out/summary.json       counts, skip reasons and rates of the run
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psfm.datamodules.codecs import decode_rgb
from psfm.datamodules.format import ShardFormatError
from psfm.datamodules.writer import ShardWriter
from psfm.io import AtomicFile, atomic_write_json
from psfm.progress import track
from psfm.qa.annotations import read_scene_annotation
from psfm.qa.config import GenerationConfig
from psfm.qa.export import chat_record, export_images, lmms_record, write_jsonl
from psfm.qa.facts import SceneFacts
from psfm.qa.generate import generate_questions
from psfm.qa.lifting.config import LiftingConfig
from psfm.qa.lifting.depth import DepthModel, depth_scale_tag
from psfm.qa.lifting.pipeline import lift_scene
from psfm.qa.lifting.views import ViewInput
from psfm.qa.lmms_task import write_task
from psfm.qa.reasons import SkipLog
from psfm.qa.schema import SchemaError
from psfm.qa.shard_io import decode_maps, iter_scenes, with_questions
from psfm.qa.sources import facts_from_meta
from psfm.qa.tally import FactsTally
from psfm.qa.vsibench import is_vsibench_question, vsibench_record

FACT_SOURCES = ("gt", "lifted")
OUTPUTS = ("shards", "questions.jsonl", "lmms_eval.jsonl", "vsibench.jsonl", "lmms_eval", "images", "summary.json")


@dataclass
class QAReport:
    """What one run produced, and what it skipped and why."""

    scenes: int = 0
    scenes_skipped: int = 0
    questions: int = 0
    tasks: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    skips: SkipLog = field(default_factory=SkipLog)
    facts: FactsTally = field(default_factory=FactsTally)
    generation_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def questions_per_second(self) -> float:
        """Facts + question generation only (no decoding, no writing)."""
        return self.questions / self.generation_seconds if self.generation_seconds > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "scenes": self.scenes,
            "scenes_skipped": self.scenes_skipped,
            "questions": self.questions,
            "tasks": dict(sorted(self.tasks.items())),
            "formats": dict(sorted(self.formats.items())),
            "answers": dict(sorted(self.answers.items())),
            "skips": self.skips.as_dict(),
            **self.facts.to_json(),
            "questions_per_second": self.questions_per_second,
            "seconds": self.seconds,
        }


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse to mix runs in one folder; with ``overwrite`` remove only what a previous run wrote."""
    existing = [out / name for name in OUTPUTS if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds QA outputs ({', '.join(p.name for p in existing)}); "
            "pass overwrite=true to replace them or choose another out="
        )
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def scene_facts(
    scene: Any,
    source: str,
    lifting: LiftingConfig,
    skips: SkipLog,
    depth_model: DepthModel | None = None,
    boxes: str | Path | None = None,
) -> SceneFacts | None:
    """Facts of one parsed scene: its annotations (``gt``) or an estimate from depth + masks (``lifted``).

    With a ``depth_model``, lifting uses its depth from the RGB views instead of the stored depth,
    and the facts' ``metric_scale`` names the model. With ``boxes`` (a folder), ground truth comes
    from ``<boxes>/<scene_id>.json`` (any layout and spelling of ``psfm.qa.annotations``) instead of the
    scene's ``meta.json`` objects, with its room and counts when it states them; a scene without that file
    is skipped (None) and counted.

    Raises:
        SchemaError: a box file or ``meta.json`` object psfm cannot read, naming the file and field.
    """
    depths, masks = decode_maps(scene, depth=True, mask=True)
    meta = scene.meta.raw
    if source == "gt":
        if boxes is not None:
            path = Path(boxes) / f"{meta['scene_id']}.json"
            if not path.is_file():
                skips.add("boxes/no_box_file", str(path))
                return None
            annotation = read_scene_annotation(path)
            source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
            if annotation.counts is not None:
                source = {**source, "object_counts": annotation.counts}
            room = annotation.room or meta.get("room")
            meta = {**meta, "objects": annotation.objects, "room": room, "source": source}
            return facts_from_meta(meta, skips, masks, depths)
        try:
            return facts_from_meta(meta, skips, masks, depths)
        except SchemaError as error:  # a meta.json object in a spelling psfm does not know: name the shard too
            raise SchemaError(f"{scene.url}: {error}") from None
    if depth_model is not None:
        where = f"{scene.url}:{scene.key}"
        depths = [
            np.asarray(depth_model(decode_rgb(scene.members[v.image], f"{where}.{v.image}"), np.asarray(v.intrinsics)))
            for v in scene.meta.views
        ]
    if depths is None or masks is None or scene.meta.pose_source == "none":
        skips.add("lifting/needs_depth_masks_and_poses", scene.key)
        return None
    labels = {
        o["instance_id"]: (o.get("color"), o["category"])
        for o in meta.get("objects") or []
        if isinstance(o, dict) and isinstance(o.get("instance_id"), int) and isinstance(o.get("category"), str)
    }
    views = [
        ViewInput(depth, mask, np.asarray(v.intrinsics), np.asarray(v.cam_to_world))
        for depth, mask, v in zip(depths, masks, scene.meta.views, strict=True)
    ]
    scale = depth_scale_tag(scene.meta.metric_scale, depth_model)
    return lift_scene(scene.key, views, labels, lifting, scale, skips)


def build_qa_dataset(
    urls: Sequence[str],
    out: str | Path,
    generation: GenerationConfig,
    lifting: LiftingConfig,
    facts: str = "gt",
    samples_per_shard: int = 32,
    images: bool = True,
    max_scenes: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    total: int | None = None,
    depth_model: DepthModel | None = None,
    boxes: str | Path | None = None,
) -> QAReport:
    """Generate questions for every scene of ``urls`` and write the QA shards and exports under ``out``.

    Raises:
        ValueError: unknown ``facts``, ``boxes`` without ``facts=gt``, or a malformed box file.
        FileNotFoundError: ``boxes`` is not a folder.
    """
    from psfm.datamodules.skips import SKIPS

    if facts not in FACT_SOURCES:
        raise ValueError(f"facts={facts!r}; use one of {FACT_SOURCES}")
    if boxes is not None and facts != "gt":
        raise ValueError(f"boxes={boxes} gives ground-truth boxes; it needs facts=gt, not facts={facts}")
    if boxes is not None and not Path(boxes).is_dir():
        raise FileNotFoundError(f"boxes={boxes}: no such folder (it should hold <scene_id>.json box files)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prepare_output(out, overwrite)
    report = QAReport()
    reader_skips_before = dict(SKIPS.reasons)
    info = {"producer": "psfm.qa", "facts": facts, "generation": asdict(generation), "lifting": asdict(lifting)}
    if boxes is not None:
        info["boxes"] = str(boxes)
    start = time.perf_counter()
    chat_file, lmms_file = AtomicFile(out / "questions.jsonl", "w"), AtomicFile(out / "lmms_eval.jsonl", "w")
    vsibench_file = AtomicFile(out / "vsibench.jsonl", "w")
    try:
        with ShardWriter(out / "shards", samples_per_shard, info=info) as writer:
            scenes = iter_scenes(urls)
            count = min(total, max_scenes) if total and max_scenes else (max_scenes or total or 0)
            for index, scene in enumerate(track(scenes, count, "qa", "scenes", progress)):
                if max_scenes and index >= max_scenes:
                    break
                began = time.perf_counter()
                try:
                    scene_fact = scene_facts(scene, facts, lifting, report.skips, depth_model, boxes)
                except ShardFormatError as error:
                    report.skips.add("scene_undecodable", str(error))
                    scene_fact = None
                if scene_fact is None:
                    report.scenes_skipped += 1
                    continue
                report.facts.add(scene_fact, scene.meta.num_views)
                questions = generate_questions(scene_fact, generation, report.skips)
                report.generation_seconds += time.perf_counter() - began
                info = {
                    "facts": facts,
                    "metric_scale": scene_fact.metric_scale,
                    "floor": {"height": scene_fact.floor_height, "source": scene_fact.floor_source},
                    "room": {"area": scene_fact.floor_area, "source": scene_fact.room_source},
                }
                writer.write(with_questions(scene, questions, info))
                paths = export_images(scene, out) if images else [v.image for v in scene.meta.views]
                for question in questions:
                    write_jsonl(chat_file.handle, chat_record(question, paths))
                    write_jsonl(lmms_file.handle, lmms_record(question, paths, dataset=f"psfm-{facts}"))
                    if is_vsibench_question(question.task, question.format):
                        write_jsonl(vsibench_file.handle, vsibench_record(question, paths, dataset=f"psfm-{facts}"))
                    report.tasks[question.task] += 1
                    report.formats[question.format] += 1
                    if question.format != "free_form":
                        report.answers[f"{question.format}:{question.answer}"] += 1
                report.scenes += 1
                report.questions += len(questions)
    except BaseException:
        for handle in (chat_file, lmms_file, vsibench_file):
            handle.discard()
        raise
    for handle in (chat_file, lmms_file, vsibench_file):
        handle.commit()
    write_task(out / "lmms_eval", out / "lmms_eval.jsonl")
    for reason, value in SKIPS.reasons.items():
        unreadable = value - reader_skips_before.get(reason, 0)
        report.skips.add(f"reader/{reason}", count=unreadable)
        report.scenes_skipped += max(unreadable, 0)
    report.seconds = time.perf_counter() - start
    atomic_write_json(out / "summary.json", report.to_json())
    return report
