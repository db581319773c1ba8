"""The psfm front door: help that teaches, clear errors, and commands that run on tiny configs."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module

from psfm.cli import COMMANDS, main
from psfm.typed_config import UnknownConfigKeyError


def test_overview_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and "psfm world" in out


def test_unknown_command_suggests_the_closest():
    with pytest.raises(SystemExit, match="did you mean 'world'"):
        main(["wrld"])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_and_misspelled_keys(command, tmp_path):
    psfm = [sys.executable, "-m", "psfm.cli", command]
    helped = subprocess.run([*psfm, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert helped.returncode == 0 and f"psfm {command}" in helped.stdout and "Usage:" in helped.stdout
    wrong = subprocess.run([*psfm, "no_such_key=1"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert wrong.returncode != 0 and "no_such_key" in wrong.stderr


def compose_command(name: str, overrides: list[str]):
    with initialize_config_module("psfm.configs", version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_plus_prefixed_typo_is_refused_before_any_work(command, tmp_path):
    """``+key=value`` passes Hydra's struct check; every command must still refuse the key by name."""
    module = importlib.import_module(COMMANDS[command][0])
    required = ["predictions=none.jsonl"] if command == "eval" else []
    cfg = compose_command(command, [*required, "+trainer_typo.max_stepz=3"])
    with pytest.raises(UnknownConfigKeyError, match="trainer_typo"):
        module.run(cfg)


def test_plus_prefixed_typo_exits_with_one_line(tmp_path):
    wrong = subprocess.run(
        [sys.executable, "-m", "psfm.cli", "world", "+scenes.trian=3"], capture_output=True, text=True, cwd=tmp_path
    )
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert "psfm world: unknown config key(s) ['scenes.trian']; SplitSizes has: train, val" in wrong.stderr


def test_world_then_shards_end_to_end(tmp_path):
    from psfm.commands import shards, world

    out = tmp_path / "world"
    tiny = ["world.height=32", "world.width=32", "world.views_per_scene=5", "samples_per_shard=4", "progress=false"]
    metrics = world.run(compose_command("world", [f"out={out}", "scenes.train=6", "scenes.val=2", "workers=1", *tiny]))
    assert metrics["train/written"] == 6 and metrics["val/written"] == 2
    again = world.run(compose_command("world", [f"out={out}", "scenes.train=6", "scenes.val=2", "workers=1", *tiny]))
    assert again["train/written"] == 0  # resumed: nothing to do
    loader = ["datamodule.num_workers=0", "datamodule.batch_size=2", "datamodule.image_size=[32,32]"]
    views = ["datamodule.views.min_views=2", "datamodule.views.max_views=4"]
    report = shards.run(compose_command("shards", [f"data={out / 'train'}", "batches=2", *loader, *views]))
    assert report["scenes"] == 6 and report["skipped"] == 0 and report["checksum_problems"] == 0
    assert report["loader_scenes_per_second"] > 0
