"""The lmms-eval task folder `psfm qa` writes: the YAML parses, names hooks that exist, and scores like `psfm eval`.

lmms-eval itself is not installed here; the YAML is read with a stand-in for its ``!function`` tag
and the written ``utils.py`` is imported from its file, as lmms-eval's ``--include_path`` does.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from psfm.datamodules.shardlists import resolve_shards
from psfm.qa.config import GenerationConfig
from psfm.qa.dataset import build_qa_dataset
from psfm.qa.lifting.config import LiftingConfig
from psfm.qa.lmms_task import METRIC, TASK
from psfm.qa.question import Question
from psfm.qa.scoring import score_all, score_one


class FunctionTag(str):
    """What ``!function utils.name`` stands for: a hook in the task folder's ``utils.py``."""


class TaskLoader(yaml.SafeLoader):
    pass


TaskLoader.add_constructor("!function", lambda loader, node: FunctionTag(loader.construct_scalar(node)))


@pytest.fixture(scope="module")
def exported(tiny_world_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("lmms") / "qa"
    config = GenerationConfig(per_task=2)
    build_qa_dataset(resolve_shards(str(tiny_world_shards)).urls, out, config, LiftingConfig(), progress=False)
    rows = [json.loads(line) for line in (out / "lmms_eval.jsonl").read_text().splitlines()]
    questions = {
        line["id"]: Question.from_json(line["qa"])
        for line in map(json.loads, (out / "questions.jsonl").read_text().splitlines())
    }
    spec = importlib.util.spec_from_file_location("psfm_spatial_utils", out / "lmms_eval" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    return out, rows, questions, utils


def test_the_yaml_reads_the_jsonl_and_names_existing_hooks(exported):
    out, rows, _, utils = exported
    config = yaml.load((out / "lmms_eval" / f"{TASK}.yaml").read_text(), Loader=TaskLoader)
    assert config["task"] == TASK and config["dataset_path"] == "json" and config["output_type"] == "generate_until"
    split = config["test_split"]
    assert (out / "lmms_eval.jsonl").samefile(config["dataset_kwargs"]["data_files"][split])
    hooks = [config[key] for key in ("doc_to_visual", "doc_to_text", "process_results")]
    hooks += [metric["aggregation"] for metric in config["metric_list"]]
    assert config["metric_list"][0]["metric"] == METRIC
    for hook in hooks:
        assert isinstance(hook, FunctionTag) and hook.startswith("utils.")
        assert callable(getattr(utils, hook.removeprefix("utils."))), hook
    assert rows[0]["ground_truth"] == rows[0][config["doc_to_target"]]


def test_every_column_keeps_one_json_type(exported):
    _, rows, _, _ = exported
    for column in rows[0]:
        kinds = {type(row[column]).__name__ for row in rows if row[column] is not None}
        assert len(kinds) == 1, f"{column}: {kinds} (pyarrow's JSON reader refuses mixed types)"


def test_hooks_give_psfm_eval_scores(exported):
    _, rows, questions, utils = exported
    predictions = {}
    for index, row in enumerate(rows):
        question = questions[row["id"]]
        wrong = "1.25" if question.unit is not None else "Z"
        predictions[row["id"]] = [question.answer, wrong, "no idea", f"{question.answer}."][index % 4]
    items = []
    for row in rows:
        assert utils.doc_to_text(row) == row["question"]
        result = utils.process_results(row, [predictions[row["id"]]])[METRIC]
        assert result["score"] == score_one(questions[row["id"]], predictions[row["id"]]).score, row["id"]
        items.append(result)
    report = score_all(questions.values(), predictions)
    assert utils.aggregate_score(items) == pytest.approx(report.overall(report.task_scores()))
    assert 0 < utils.aggregate_score(items) < 1


def test_doc_to_visual_opens_the_exported_views(exported):
    _, rows, _, utils = exported
    row = max(rows, key=lambda r: len(r["images"]))
    images = utils.doc_to_visual(row)
    assert len(images) == len(row["images"]) > 1 and all(image.mode == "RGB" for image in images)
