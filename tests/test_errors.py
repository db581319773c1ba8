"""The common mistakes end in one line naming the value and what to do, never in a Lightning traceback.

Each case runs the real command line in-process (``psfm.cli.main``) from an empty folder, as a person
would type it. Before these checks, the data mistakes printed 46-48-line tracebacks from inside
``trainer.fit``, ``batch_size=0`` a ``ZeroDivisionError``, and ``trainer.max_steps=0`` or
``scenes.train=-5`` were run as asked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from psfm import load
from psfm.cli import main
from tests.conftest import write_synthetic_shards

QUIET = ["logger.wandb=disabled", "trainer.progress_bar=false", "datamodule.num_workers=0"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """A real shard folder, so the config mistakes are the only thing wrong."""
    folder = tmp_path_factory.mktemp("shards") / "train"
    write_synthetic_shards(folder, num_scenes=4, per_shard=2)
    return folder


def one_line_exit(argv: list[str], cwd: Path, monkeypatch, capsys) -> str:
    """The message ``psfm <argv>`` exits with, checked to be one line with no traceback anywhere."""
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    printed = capsys.readouterr()
    message = exited.value.code
    assert isinstance(message, str), f"exit status {message!r}, not a message:\n{printed.err[-3000:]}"
    assert "\n" not in message and len(message) < 400, message
    assert "Traceback" not in printed.err + printed.out
    assert message.startswith(f"psfm {argv[0]}: "), message
    return message


def test_pretrain_before_psfm_world_says_to_run_it(tmp_path, monkeypatch, capsys):
    message = one_line_exit(["pretrain", *QUIET], tmp_path, monkeypatch, capsys)
    assert "datamodule.train=data/world/train does not exist" in message and "run `psfm world` first" in message


def test_pretrain_with_only_the_val_split_names_what_is_there(shards, tmp_path, monkeypatch, capsys):
    shutil.copytree(shards, tmp_path / "data" / "world" / "val")
    message = one_line_exit(["pretrain", *QUIET], tmp_path, monkeypatch, capsys)
    assert "data/world/train does not exist" in message and "data/world holds only val/" in message


def test_pretrain_on_a_missing_folder_names_it(tmp_path, monkeypatch, capsys):
    nowhere = tmp_path / "nowhere"
    message = one_line_exit(["pretrain", f"datamodule.train={nowhere}", *QUIET], tmp_path, monkeypatch, capsys)
    assert f"datamodule.train={nowhere} does not exist" in message


def test_pretrain_on_an_empty_folder_names_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["pretrain", "datamodule.train=empty", "datamodule.val=null", *QUIET]
    message = one_line_exit(argv, tmp_path, monkeypatch, capsys)
    assert "datamodule.train=empty" in message and "empty folder" in message


def test_pretrain_on_a_missing_val_folder_names_it(shards, tmp_path, monkeypatch, capsys):
    argv = ["pretrain", f"datamodule.train={shards}", "datamodule.val=no_val", *QUIET]
    message = one_line_exit(argv, tmp_path, monkeypatch, capsys)
    assert "datamodule.val=no_val does not exist" in message and "datamodule.val=null" in message


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("datamodule.batch_size=0", "datamodule.batch_size=0"),
        ("trainer.max_steps=0", "trainer.max_steps=0"),
        ("trainer.checkpoint_every_steps=-1", "trainer.checkpoint_every_steps=-1"),
    ],
)
def test_pretrain_refuses_counts_no_run_can_use(shards, tmp_path, monkeypatch, capsys, override, named):
    argv = ["pretrain", f"datamodule.train={shards}", "datamodule.val=null", override, *QUIET]
    message = one_line_exit(argv, tmp_path, monkeypatch, capsys)
    assert named in message and "at least" in message
    assert not (tmp_path / "outputs" / "pretrain" / "world_tiny" / "checkpoints").exists()  # refused before any work


def test_world_refuses_a_negative_scene_count(tmp_path, monkeypatch, capsys):
    argv = ["world", "scenes.train=-5", "scenes.val=0", "out=w", "progress=false"]
    message = one_line_exit(argv, tmp_path, monkeypatch, capsys)
    assert "scenes.train=-5" in message and "at least 0" in message


def test_shards_on_a_missing_folder_names_it(tmp_path, monkeypatch, capsys):
    message = one_line_exit(["shards", "data=nowhere"], tmp_path, monkeypatch, capsys)
    assert "nowhere does not exist" in message


def _foreign_files(tmp_path: Path) -> list[Path]:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    checkpoint = tmp_path / "last.ckpt"  # what a Lightning checkpoint is on disk: a torch zip archive
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 3}, checkpoint)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    return [junk, checkpoint, listing]


def test_load_of_a_foreign_file_names_it_and_what_load_expects(tmp_path):
    for path in _foreign_files(tmp_path):
        with pytest.raises(ValueError) as raised:
            load(path)
        message = str(raised.value)
        assert str(path) in message and "encoder.json" in message and "encoder.safetensors" in message, message
        assert "\n" not in message


def test_load_of_a_checkpoint_points_to_the_export(tmp_path):
    checkpoint = _foreign_files(tmp_path)[1]
    with pytest.raises(ValueError, match="a training checkpoint"):
        load(checkpoint)


def test_load_of_an_export_without_its_weights_names_the_missing_file(tmp_path):
    (tmp_path / "encoder.json").write_text('{"format": "psfm-encoder", "version": 1}')
    with pytest.raises(FileNotFoundError, match="encoder.safetensors"):
        load(tmp_path)


def test_world_refuses_a_folder_another_writer_holds(tmp_path, monkeypatch, capsys):
    from psfm.datamodules.writer import ShardWriter

    tiny = ["world.height=32", "world.width=32", "world.views_per_scene=3", "progress=false", "workers=1"]
    with ShardWriter(tmp_path / "w" / "train", 4, info={"another": "writer"}):
        argv = ["world", "out=w", "scenes.train=2", "scenes.val=0", *tiny]
        message = one_line_exit(argv, tmp_path, monkeypatch, capsys)
    assert "w/train: another writer holds this folder" in message
