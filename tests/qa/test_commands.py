"""``psfm qa`` then ``psfm eval`` end to end on tiny world shards written in a temporary folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from psfm.commands import eval as eval_command
from psfm.commands import qa as qa_command
from psfm.datamodules.inspect import inspect_shards
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.writer import verify_shards


def compose_command(name: str, overrides: list[str]):
    with initialize_config_module("psfm.configs", version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def qa_run(tiny_world_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("qa") / "val"
    overrides = [f"data={tiny_world_shards}", f"out={out}", "progress=false", "generation.per_task=2"]
    return out, qa_command.run(compose_command("qa", overrides))


def test_qa_writes_shards_and_exports(qa_run):
    out, metrics = qa_run
    assert metrics["scenes"] == 3 and metrics["scenes_skipped"] == 0 and metrics["questions"] > 30
    assert metrics["questions_per_second"] > 0
    assert verify_shards(out / "shards") == []
    report = inspect_shards(resolve_shards(str(out / "shards")).urls)  # the loader's validation, qa field included
    assert report.scenes == 3 and report.skipped == 0
    lines = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert len(lines) == metrics["questions"]
    for line in lines:
        user, assistant = line["messages"]
        assert user["content"].count("<image>") == len(line["images"]) >= 1
        assert assistant["content"] == line["qa"]["answer"]
        assert all((out / path).is_file() for path in line["images"])
    rows = [json.loads(line) for line in (out / "lmms_eval.jsonl").read_text().splitlines()]
    assert {row["id"] for row in rows} == {line["id"] for line in lines}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["questions"] == metrics["questions"] and summary["skips"]


def test_eval_scores_perfect_and_broken_predictions(qa_run, tmp_path):
    out, _ = qa_run
    lines = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    perfect = tmp_path / "perfect.jsonl"
    perfect.write_text("".join(json.dumps({"id": q["id"], "prediction": q["qa"]["answer"]}) + "\n" for q in lines))
    questions = f"questions={out / 'questions.jsonl'}"
    metrics = eval_command.run(compose_command("eval", [f"predictions={perfect}", questions, "bootstrap=50"]))
    assert metrics["overall"] == pytest.approx(1.0) and metrics["parse_failure_rate"] == 0.0
    assert metrics["overall_ci_low"] == pytest.approx(1.0) and metrics["chance"] < 0.7
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        "not json\n"
        + "".join(json.dumps({"id": q["id"], "prediction": "no idea"}) + "\n" for q in lines[:-1])
        + json.dumps({"id": "unknown", "prediction": "A"})
        + "\n"
    )
    metrics = eval_command.run(compose_command("eval", [f"predictions={broken}", questions, "bootstrap=0"]))
    assert metrics["problems/prediction_line_not_json"] == 1 and metrics["problems/missing_prediction"] == 1
    assert metrics["problems/prediction_for_unknown_question"] == 1
    assert metrics["parse_failure_rate"] > 0.5 and metrics["overall"] < 0.2


def test_eval_reads_questions_embedded_in_prediction_lines(qa_run, tmp_path):
    out, _ = qa_run
    lines = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    embedded = tmp_path / "embedded.jsonl"
    embedded.write_text("".join(json.dumps({**q, "prediction": q["qa"]["answer"]}) + "\n" for q in lines))
    metrics = eval_command.run(
        compose_command("eval", [f"predictions={embedded}", "bootstrap=0", f"out={tmp_path / 'm.json'}"])
    )
    assert metrics["overall"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "m.json").read_text())["questions"] == len(lines)


def test_qa_refuses_a_used_folder_and_missing_data(qa_run, tmp_path, tiny_world_shards):
    out, _ = qa_run
    with pytest.raises(FileExistsError, match="overwrite=true"):
        qa_command.run(compose_command("qa", [f"data={tiny_world_shards}", f"out={out}", "progress=false"]))
    with pytest.raises(FileNotFoundError, match="psfm world"):
        qa_command.run(compose_command("qa", [f"data={tmp_path / 'nothing'}", f"out={tmp_path / 'q'}"]))


def test_qa_with_lifted_facts(tiny_world_shards, tmp_path):
    overrides = [f"data={tiny_world_shards}", f"out={tmp_path / 'lifted'}", "progress=false", "facts=lifted"]
    metrics = qa_command.run(compose_command("qa", overrides))
    # 32x32 renders are too coarse to keep most objects, but scenes go through and camera questions remain
    assert metrics["scenes"] + metrics["scenes_skipped"] == 3 and metrics["questions"] > 0
    summary = json.loads((tmp_path / "lifted" / "summary.json").read_text())
    assert any(reason.startswith("lifting/") for reason in summary["skips"])


class OracleDepth:
    """A stand-in for a user's monocular depth model: it looks the true depth up by image, and counts calls."""

    name = "oracle"
    table: dict[bytes, np.ndarray] = {}
    calls = 0

    def __call__(self, rgb, intrinsics):
        OracleDepth.calls += 1
        return OracleDepth.table[rgb.tobytes()]


def test_lifting_with_a_user_depth_model_records_it_as_the_metric_scale(tiny_world_shards):
    from psfm.datamodules.codecs import decode_rgb
    from psfm.qa.dataset import scene_facts
    from psfm.qa.lifting.config import LiftingConfig
    from psfm.qa.lifting.depth import load_depth_model
    from psfm.qa.reasons import SkipLog
    from psfm.qa.shard_io import decode_maps, iter_scenes

    scene = next(iter(iter_scenes(resolve_shards(str(tiny_world_shards)).urls)))
    depths, _ = decode_maps(scene, depth=True, mask=False)
    for view, depth in zip(scene.meta.views, depths, strict=True):
        OracleDepth.table[decode_rgb(scene.members[view.image]).tobytes()] = depth
    model = load_depth_model("tests.qa.test_commands:OracleDepth")
    facts = scene_facts(scene, "lifted", LiftingConfig(), SkipLog(), model)
    assert OracleDepth.calls == scene.meta.num_views
    assert facts is not None and facts.metric_scale == "depth_model:oracle" and facts.source == "lifted"
    with pytest.raises(ValueError, match="package.module:factory"):
        load_depth_model("no_colon_here")
