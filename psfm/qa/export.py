"""Exports for training and evaluating VLMs: chat-message JSONL and an lmms-eval-style JSONL.

Chat format (LLaVA / Qwen-VL / ms-swift style): one line per question with ``images`` (paths,
relative to the export folder) and ``messages``; the user turn holds one ``<image>`` placeholder
per image, in order, then the question; the assistant turn is the exact answer. The full question
record rides along under ``qa`` (tags, exact value, spec) so ``psfm eval questions=...`` can score.

lmms-eval style: flat columns in the manner of VSI-Bench's dataset (``id``, ``scene_name``,
``question_type``, ``question``, ``options``, ``ground_truth``) plus ``images`` and our tags, ready
for a task YAML with ``dataset_path: json`` (``psfm.qa.lmms_task`` writes one). Every column keeps
one JSON type, as pyarrow's JSON reader requires: ``answer_value`` is text, the exact number as
``repr`` writes it (``float()`` gives it back bit for bit) or the label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from psfm.qa.question import Question

IMAGE_PLACEHOLDER = "<image>"


def export_images(scene: Any, out_dir: Path) -> list[str]:
    """Copy the scene's encoded view images (bytes as stored) to ``images/<key>/``; paths relative to ``out_dir``.

    A scene without views (annotations only) exports nothing.
    """
    if not scene.meta.views:
        return []
    folder = out_dir / "images" / scene.key
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for view in scene.meta.views:
        target = folder / view.image
        target.write_bytes(scene.members[view.image])
        paths.append(str(target.relative_to(out_dir)))
    return paths


def chat_record(question: Question, view_paths: list[str]) -> dict[str, Any]:
    """One chat-format training/eval example."""
    images = [view_paths[v] for v in question.views]
    prompt = "\n".join([IMAGE_PLACEHOLDER] * len(images) + [question.question])
    return {
        "id": question.id,
        "images": images,
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": question.answer}],
        "qa": question.to_json(),
    }


def lmms_record(question: Question, view_paths: list[str], dataset: str) -> dict[str, Any]:
    """One lmms-eval-style row (VSI-Bench column names where they exist)."""
    options = [f"{chr(65 + i)}. {choice}" for i, choice in enumerate(question.choices)] or None
    return {
        "id": question.id,
        "dataset": dataset,
        "scene_name": question.scene_id,
        "question_type": question.task,
        "question": question.question,
        "options": options,
        "ground_truth": question.answer,
        "answer_value": repr(question.answer_value) if question.unit is not None else question.answer_value,
        "format": question.format,
        "unit": question.unit,
        "level": question.level,
        "family": question.family,
        "views_needed": question.views_needed,
        "images": [view_paths[v] for v in question.views],
    }


def write_jsonl(handle: IO[str], record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of a JSONL file, and one message per line that is not a JSON object (never fatal)."""
    records, problems = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                problems.append(f"{path}:{number}: not JSON ({error})")
                continue
            if not isinstance(record, dict):
                problems.append(f"{path}:{number}: not a JSON object")
                continue
            records.append(record)
    return records, problems
