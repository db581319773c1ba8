"""Exact resume across epochs: a run killed anywhere trains on the same batches as one never killed.

The tiny world has 24 training scenes; at 4 scenes a batch an epoch is 6 batches in both finite and
resampled mode, so 14 steps span three epochs and a kill can land in epoch 0, in epoch 1, or right at
the end of an epoch. The check is the sequence of scene keys each optimizer step trained on (a wrong
data position names the first step that differs), then the final weights and the saved data position.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from psfm.datamodules.datamodule import SceneDataModule
from psfm.training.train import train
from tests.training import resume_worker as ddp_worker
from tests.training.conftest import tiny_command

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 14
BATCHES_PER_EPOCH = 6  # 24 scenes / 4 per batch, both modes (resampled: samples_per_epoch = the manifest's 24)


class _Crash(Exception):
    pass


def _command(world, run_dir, resampled: bool):
    command = tiny_command(world, run_dir, max_steps=MAX_STEPS)
    command.datamodule.batch_size = 4
    command.datamodule.resampled = resampled
    return command


def _train(command, trained: dict[int, list[str]], crash_at_step: int | None = None) -> None:
    """Run ``train``, writing into ``trained`` the scene keys of each optimizer step (1-based).

    A step trained again after a resume overwrites its entry, so after crash + resume ``trained`` holds
    what the final weights actually saw. ``crash_at_step`` raises when the batch for that step + 1
    arrives: the run dies with ``crash_at_step`` steps done and its last checkpoint at or before them.
    """
    original = SceneDataModule.on_after_batch_transfer

    def record(self, batch, index):
        if self.trainer.training:
            if self.trainer.global_step == crash_at_step:
                raise _Crash
            trained[self.trainer.global_step + 1] = list(batch.scene_keys)
        return original(self, batch, index)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SceneDataModule, "on_after_batch_transfer", record)
        if crash_at_step is None:
            train(command)
        else:
            with pytest.raises(_Crash):
                train(command)


def _last(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.fixture(scope="module", params=[False, True], ids=["finite", "resampled"])
def straight(request, tiny_world, tmp_path_factory):
    """The uninterrupted run of each mode, shared by that mode's crash points."""
    run_dir = tmp_path_factory.mktemp("straight")
    trained: dict[int, list[str]] = {}
    _train(_command(tiny_world, run_dir, request.param), trained)
    assert sorted(trained) == list(range(1, MAX_STEPS + 1))
    return request.param, trained, _last(run_dir)


# crash points (steps done when the run dies) and the checkpoint it resumes from (every 2 steps):
#   3 -> step 2, inside epoch 0;  6 -> step 6, the last batch of epoch 0 (resume must start epoch 1 at
#   its first batch, neither replaying epoch 0's tail nor skipping epoch 1);  9 -> step 8, inside epoch 1
#   (a resume must rebuild epoch 1's stream and skip its first 2 batches), and step 9 is trained twice.
@pytest.mark.parametrize("crash_at_step", [3, 6, 9], ids=["epoch0", "epoch_end", "epoch1"])
def test_crash_in_any_epoch_then_resume_trains_on_the_uninterrupted_batches(
    straight, tiny_world, tmp_path, crash_at_step
):
    resampled, straight_trained, straight_last = straight
    command = _command(tiny_world, tmp_path / "crashed", resampled)
    trained: dict[int, list[str]] = {}
    _train(command, trained, crash_at_step)
    resumed_from = _last(tmp_path / "crashed")["global_step"]
    assert resumed_from == crash_at_step - crash_at_step % 2
    _train(command, trained)  # resume=auto picks up last.ckpt

    differing = [step for step in straight_trained if trained.get(step) != straight_trained[step]]
    assert differing == [], f"resumed from step {resumed_from}; first different step {differing[:1]}"
    final = _last(tmp_path / "crashed")
    # the position a later resume would start from: a counter restarted by the resume would replay batches
    assert final["SceneDataModule"] == straight_last["SceneDataModule"]
    assert final["epoch"] == straight_last["epoch"] and final["global_step"] == MAX_STEPS
    different = [k for k, v in straight_last["state_dict"].items() if not torch.equal(v, final["state_dict"][k])]
    assert different == []


def test_the_tiny_world_epoch_is_as_long_as_the_crash_points_assume(straight):
    """Guards the crash points above: they mean 'epoch 0', 'epoch end', 'epoch 1' only at 6 batches an epoch."""
    _, _, last = straight
    assert last["epoch"] == MAX_STEPS // BATCHES_PER_EPOCH
    assert last["SceneDataModule"]["consumed_batches"] == MAX_STEPS % BATCHES_PER_EPOCH


def test_a_finished_run_given_more_steps_resumes_where_lightning_does(straight, tiny_world, tmp_path):
    """5 steps stop inside epoch 0 and Lightning then closes that epoch; with more steps it resumes at epoch 1.

    ``FinalCheckpoint`` writes last.ckpt after the epoch was closed, so its data position must name epoch 1's
    start too: (0, 5) would feed epoch 0's last batch to the trainer's epoch 1 (the old behaviour, silently)
    or stop at the data/trainer epoch check.
    """
    resampled, straight_trained, _ = straight
    command = _command(tiny_world, tmp_path / "run", resampled)
    command.trainer.max_steps = 5
    trained: dict[int, list[str]] = {}
    _train(command, trained)
    command.trainer.max_steps = 8
    _train(command, trained)
    assert [trained[step] for step in (6, 7, 8)] == [straight_trained[step] for step in (7, 8, 9)]  # epoch 1's start


DDP_CRASHES = {"epoch1": 5, "epoch_end": 6}  # -> resumed from step 4 (epoch 1, batch 1 of 3) and 6 (epoch 1's last)


@pytest.mark.slow
def test_ddp_crash_in_epoch_1_or_at_its_end_then_resume_trains_on_the_uninterrupted_batches(tiny_world, tmp_path):
    """Two ranks, each drawing its own resampled shards: every rank must resume its own stream and RNG states.

    Resampled is the mode multi-rank training uses; finite mode's per-rank shard split resumes through the same
    code (``resume_worker ... finite 5 6`` passes too) and its cross-epoch resume is covered single-process above.
    All runs happen in one subprocess (``resume_worker``) that forks the ranks: about 20 s, most of it start-up.
    """
    mode = "resampled"
    command = [sys.executable, "-m", "tests.training.resume_worker", str(tiny_world), str(tmp_path), mode]
    command += [str(step) for step in DDP_CRASHES.values()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # its own session: a timeout kills the forked ranks too, not only their parent
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    assert process.returncode == 0, output[-4000:]

    def trained(run: str) -> dict[tuple[int, int], list[str]]:
        steps = {}
        for rank in (0, 1):
            for line in (tmp_path / run / f"keys{rank}.jsonl").read_text().splitlines():
                step, keys = json.loads(line)
                steps[rank, step] = keys  # a step trained again after the resume overwrites its first try
        return steps

    straight, straight_last = trained("straight"), _last(tmp_path / "straight")
    assert sorted(step for rank, step in straight if rank == 0) == list(range(1, ddp_worker.MAX_STEPS + 1))
    assert straight_last["epoch"] == 2 and straight_last["SceneDataModule"]["consumed_batches"] == 2  # 3 an epoch
    for name, step in DDP_CRASHES.items():
        resumed = trained(f"crash{step}")
        differing = sorted(key for key in straight if resumed.get(key) != straight[key])
        assert differing == [], f"{name}: first different (rank, step) {differing[:1]}"
        final = _last(tmp_path / f"crash{step}")
        assert final["SceneDataModule"] == straight_last["SceneDataModule"], name
        different = [k for k, v in straight_last["state_dict"].items() if not torch.equal(v, final["state_dict"][k])]
        assert different == [], name
