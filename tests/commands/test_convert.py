"""``psfm convert``: the command line, resuming, workers, one-line errors, and a converted capture trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psfm.cli import main
from psfm.commands import convert, shards
from psfm.commands import qa as qa_command
from psfm.datamodules.datamodule import DataModuleConfig
from psfm.datamodules.views import ViewSampling
from psfm.training.train import train
from tests.converters.captures import read_shards, rendered
from tests.converters.test_scannet import write_scannet
from tests.converters.test_transforms import write_transforms
from tests.test_errors import one_line_exit
from tests.training.conftest import tiny_command


@pytest.fixture
def captures(tmp_path) -> Path:
    """Three transforms.json captures, one a portrait, in subfolders of one folder."""
    root = tmp_path / "captures"
    write_transforms(root / "kitchen", rendered(0))
    write_transforms(root / "hall", rendered(1, height=64, width=48))
    write_transforms(root / "yard", rendered(2))
    return root


def shard_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.tar"))}


def test_the_first_word_is_the_format_and_a_rerun_resumes(captures, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["convert", "transforms", f"input={captures}", "out=shards", "samples_per_shard=2", "progress=false"])
    out = capsys.readouterr().out
    assert "3 found, 3 written, 0 already there" in out and "views written" in out
    assert sorted(read_shards(tmp_path / "shards")) == ["hall", "kitchen", "yard"]
    before = shard_bytes(tmp_path / "shards")
    metrics = convert.run(
        convert.ConvertCommand(format="transforms", input=str(captures), out="shards", progress=False)
    )
    assert metrics["already_done"] == 3 and metrics["written"] == 0
    assert shard_bytes(tmp_path / "shards") == before


def test_workers_write_the_same_shards_as_one_process(captures, tmp_path):
    for workers in (1, 2):
        command = convert.ConvertCommand(
            format="transforms", input=str(captures), out=str(tmp_path / f"w{workers}"), workers=workers, progress=False
        )
        assert convert.run(command)["written"] == 3
    assert shard_bytes(tmp_path / "w1") == shard_bytes(tmp_path / "w2")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["convert", "input=x", "out=y"], "name a format: psfm convert {transforms|colmap|scannet|images|video|boxes}"),
        (["convert", "colmp", "input=x", "out=y"], "format='colmp' is not a known capture format"),
        (["convert", "colmap", "out=y"], "input= is required"),
        (["convert", "colmap", "input=nowhere", "out=y"], "input=nowhere does not exist"),
        (["convert", "scannet", "input=.", "out=y"], "no scannet capture found there (a folder with color/"),
        (["convert", "images", "input=.", "out=y", "stride=0"], "stride=0 cannot work"),
        (["convert", "images", "input=.", "out=y", "distortion=ignore"], "distortion='ignore': use one of"),
        (["convert", "video", "input=.", "out=y", "stride=2", "video.every_seconds=1"], "both choose frames: set one"),
        (["convert", "video", "input=.", "out=y"], "no video capture found there (a video file (.mp4"),
        (["convert", "video", "input=.", "out=y", "video.min_sharpness=nan"], "video.min_sharpness=nan cannot work"),
        (["convert", "images", "input=.", "out=y", "pose_model=sfm", "sfm.matcher=vocab"], "sfm.matcher='vocab'"),
        (["convert", "images", "input=.", "out=y", "pose_model=sfm", "distortion=refuse"], "set sfm.camera_model="),
        (["convert", "colmap", "input=.", "out=y", "pose_model=sfm"], "colmap brings its own poses"),
    ],
)
def test_usage_mistakes_end_in_one_line(argv, said, tmp_path, monkeypatch, capsys):
    assert said in one_line_exit(argv, tmp_path, monkeypatch, capsys)


def test_resuming_with_other_options_is_refused_in_one_line(captures, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["convert", "transforms", f"input={captures}", "out=shards", "progress=false"])
    argv = ["convert", "transforms", f"input={captures}", "out=shards", "max_side=32", "progress=false"]
    message = one_line_exit(argv, tmp_path, monkeypatch, capsys)
    assert "different configuration" in message and "max_side" in message


# Why lifted QA may skip on converted ScanNet: small renders (too few points per object in a view, boxes that
# fail the confidence gate), ambiguity filters and geometry too small to ask about, and no colour (ScanNet labels
# are categories only: an object is named "the <category>" when it is its scene's only one, and a repeated
# category cannot be told apart). Anything else is a bug.
EXPECTED_QA_SKIPS = (
    "lifting/detection_too_few_points",
    "lifting/object_too_few_points",
    "lifting/object_low_confidence",
    "lifting/object_failed_verification",
    "duplicate_category_without_colour",
    "/ambiguous:",
    "/no_distractors",
    "/objects_too_close",
    "/answer_too_small",
    "/object_not_elongated",
)


def test_a_converted_scannet_capture_runs_through_shards_pretrain_and_lifted_qa(tmp_path):
    """The end of the road: converted real-capture shards are data like the world's, depth and masks included."""
    root = tmp_path / "scannet"
    for index in range(5):
        write_scannet(root / "train" / f"scene{index:04d}_00", rendered(index))
    write_scannet(root / "val" / "scene0100_00", rendered(5))
    for split in ("train", "val"):
        report = convert.run(
            convert.ConvertCommand(format="scannet", input=str(root / split), out=str(tmp_path / split), progress=False)
        )
        assert report["written"] == {"train": 5, "val": 1}[split]
    datamodule = DataModuleConfig(
        train=str(tmp_path / "train"), val=None, batch_size=2, num_workers=0, image_size=[32, 32],
        views=ViewSampling(2, 4), resampled=False, load_depth=True,
    )  # fmt: skip
    checked = shards.run(shards.ShardsCommand(data=str(tmp_path / "train"), batches=2, datamodule=datamodule))
    assert checked["scenes"] == 5 and checked["skipped"] == 0 and checked["checksum_problems"] == 0
    metrics = train(tiny_command(tmp_path, tmp_path / "run", max_steps=3))
    assert metrics["global_step"] == 3 and metrics["nan_steps"] == 0 and metrics["data/skipped_total"] == 0
    qa = qa_command.run(
        qa_command.QACommand(data=str(tmp_path / "train"), out=str(tmp_path / "qa"), facts="lifted", progress=False)
    )
    assert qa["scenes"] == 5 and qa["scenes_skipped"] == 0 and qa["questions"] >= 30
    summary = json.loads((tmp_path / "qa" / "summary.json").read_text())
    unexpected = [reason for reason in summary["skips"] if not any(part in reason for part in EXPECTED_QA_SKIPS)]
    assert unexpected == [], unexpected
    assert summary["tasks"].get("object_counting", 0) > 0  # lifted objects with their ScanNet labels
    lines = [json.loads(line) for line in (tmp_path / "qa" / "questions.jsonl").read_text().splitlines()]
    assert len(lines) == qa["questions"] and all(line["messages"][1]["content"].strip() for line in lines)
