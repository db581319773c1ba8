"""wandb, offline by default: its files stay in the run folder, and a resumed job continues the same wandb run.

The other training tests turn wandb off for speed; these are the ones that run the default logger
(mutation testing: ``save_dir`` dropped and the run id never written both survived).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from psfm.training.config import LoggerConfig
from psfm.training.train import build_loggers, train
from tests.training.conftest import tiny_command


def test_an_offline_wandb_run_lives_in_the_run_folder_and_a_resume_continues_it(tiny_world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # wandb would write into the working directory if the run folder were lost
    run_dir = tmp_path / "run"
    command = replace(tiny_command(tiny_world, run_dir, max_steps=2, limit_val_batches=0), logger=LoggerConfig())
    assert command.logger.wandb == "offline"  # the default
    train(command)
    run_id = (run_dir / "wandb_id.txt").read_text()
    assert len(run_id) == 8 and run_id.isalnum()  # wandb's id, not "None" (a logger not started yet has none)
    assert [path.name for path in (run_dir / "wandb").glob("offline-run-*")] != []
    assert all(path.name.endswith(run_id) for path in (run_dir / "wandb").glob("offline-run-*"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # nothing beside it

    command.trainer.max_steps = 3
    assert train(command)["global_step"] == 3
    assert (run_dir / "wandb_id.txt").read_text() == run_id
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))  # offline-run-<start time>-<id>: one per start
    assert len(runs) == 2 and all(path.name.endswith(run_id) for path in runs)  # the same run, resumed


def test_two_jobs_in_one_process_log_to_two_wandb_runs_each_in_its_own_folder(tiny_world, tmp_path, monkeypatch):
    """Lightning leaves the wandb run open; a second job in the same process (a sweep, a notebook) logged
    into the first job's run and folder, and its own folder got no wandb run at all."""
    monkeypatch.chdir(tmp_path)
    ids = []
    for name in ("first", "second"):
        run_dir = tmp_path / name
        train(replace(tiny_command(tiny_world, run_dir, max_steps=1, limit_val_batches=0), logger=LoggerConfig()))
        ids.append((run_dir / "wandb_id.txt").read_text())
        runs = list((run_dir / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and runs[0].name.endswith(ids[-1]), name
    assert ids[0] != ids[1]


def test_a_run_folder_holding_the_old_none_id_gets_a_real_one(tiny_world, tmp_path, monkeypatch):
    """Run folders of older psfm hold "None" in ``wandb_id.txt``; resuming one must not pass id="None" on."""
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "wandb_id.txt").write_text("None")
    command = replace(tiny_command(tiny_world, run_dir, max_steps=1, limit_val_batches=0), logger=LoggerConfig())
    train(command)
    run_id = (run_dir / "wandb_id.txt").read_text()
    assert run_id != "None" and len(run_id) == 8
    assert all(path.name.endswith(run_id) for path in (run_dir / "wandb").glob("offline-run-*"))


def test_an_unknown_wandb_mode_is_refused_naming_the_choices(tmp_path):
    command = replace(tiny_command(Path("unused"), tmp_path), logger=LoggerConfig(wandb="offlne"))
    with pytest.raises(ValueError, match="logger.wandb must be offline, online or disabled, got 'offlne'"):
        build_loggers(command, tmp_path)


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_each_wandb_mode_builds_a_logger_of_that_mode(tmp_path, mode):
    """Built only (an online run would reach for the network when it starts): the mode reaches the logger
    (mutation testing: "online" refused, and the offline flag lost, survived)."""
    command = replace(tiny_command(Path("unused"), tmp_path), logger=LoggerConfig(wandb=mode))
    csv, wandb = build_loggers(command, tmp_path)
    assert type(csv).__name__ == "CSVLogger" and type(wandb).__name__ == "WandbLogger"
    assert wandb._offline is (mode == "offline") and wandb.save_dir == str(tmp_path)
    assert (wandb._project, wandb._name) == ("psfm", "test")  # logger.project, and the experiment as the run name
