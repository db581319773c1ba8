"""An lmms-eval task over ``lmms_eval.jsonl``: ``lmms_eval --tasks psfm_spatial --include_path OUT/lmms_eval``.

``psfm qa`` writes ``OUT/lmms_eval/psfm_spatial.yaml`` (``dataset_path: json`` on the JSONL) and a
small ``utils.py`` whose hooks are the functions below, so a model scored by lmms-eval gets the
per-question scores of ``psfm eval``: the same parsing (VSI-Bench's first token), the same MRA, and
the same overall score (the unweighted mean of task scores). lmms-eval is never imported here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from psfm.io import atomic_write_bytes
from psfm.qa.question import Question
from psfm.qa.scoring import ScoreReport, score_one

TASK = "psfm_spatial"
METRIC = "psfm_score"

TASK_YAML = """\
# lmms-eval task over psfm spatial QA, written by `psfm qa`; its scores equal `psfm eval`'s.
# Run: lmms_eval --model ... --tasks {task} --include_path {folder}
# The JSONL path below is absolute: after moving the `psfm qa` output folder, run `psfm qa` again or edit it.
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: ground_truth
generation_kwargs:
  max_new_tokens: 16
  temperature: 0
  top_p: 1.0
  num_beams: 1
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: {metric}
    aggregation: !function utils.aggregate_score
    higher_is_better: true
lmms_eval_specific_kwargs:
  default:
    pre_prompt: ""
    post_prompt: ""
metadata:
  version: 0.0
"""

UTILS = '''\
"""lmms-eval hooks of the psfm_spatial task, written by `psfm qa`; the logic lives in psfm.qa.lmms_task."""

from pathlib import Path

from psfm.qa import lmms_task

ROOT = Path(__file__).resolve().parent.parent  # the `psfm qa` output folder, which image paths are relative to


def doc_to_visual(doc):
    return lmms_task.doc_to_visual(doc, ROOT)


doc_to_text = lmms_task.doc_to_text
process_results = lmms_task.process_results
aggregate_score = lmms_task.aggregate_score
'''


def question_from_row(doc: dict[str, Any]) -> Question:
    """The question of an ``lmms_eval.jsonl`` row, as ``psfm.qa.scoring`` needs it."""
    numeric = doc["unit"] is not None
    return Question(
        id=doc["id"],
        scene_id=doc["scene_name"],
        task=doc["question_type"],
        family=doc["family"],
        level=doc["level"],
        format=doc["format"],
        question=doc["question"],
        answer=doc["ground_truth"],
        answer_value=float(doc["answer_value"]) if numeric else doc["answer_value"],
        unit=doc["unit"],
        views=[],
        views_needed=doc["views_needed"],
    )


def doc_to_visual(doc: dict[str, Any], root: Path) -> list[Any]:
    """The question's views as RGB PIL images (``psfm qa images=true`` must have copied them)."""
    from PIL import Image

    paths = [Path(root) / path for path in doc["images"]]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{doc['id']}: no image at {missing[0]}; run `psfm qa` with images=true")
    return [Image.open(path).convert("RGB") for path in paths]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The question as exported (options and answer instruction included), inside optional pre/post prompts."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, dict[str, Any]]:
    """Score the model's first response exactly as ``psfm eval`` does (VSI-Bench parsing, MRA with ``<=``)."""
    scored = score_one(question_from_row(doc), results[0] if results else None)
    return {METRIC: {"id": scored.question_id, "task": scored.task, "score": scored.score}}


def aggregate_score(items: list[dict[str, Any]]) -> float:
    """Overall score: the unweighted mean of task means (VSI-Bench, ``psfm eval``)."""
    by_task: dict[str, list[float]] = {}
    for item in items:
        by_task.setdefault(item["task"], []).append(item["score"])
    return ScoreReport.overall({task: sum(scores) / len(scores) for task, scores in by_task.items()})


def write_task(folder: Path, data_file: Path) -> None:
    """Write the task YAML and its ``utils.py`` into ``folder`` (each file atomically)."""
    folder = Path(folder)
    text = TASK_YAML.format(
        task=TASK, folder=folder, data_file=json.dumps(str(Path(data_file).resolve())), metric=METRIC
    )
    atomic_write_bytes(folder / f"{TASK}.yaml", text.encode("utf-8"))
    atomic_write_bytes(folder / "utils.py", UTILS.encode("utf-8"))
