"""Run folders: moved between a kill and the resume, left with torn temporaries, resumed with other settings."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.errors import MissingPathError, UsageError
from psfm.training.resume import check_resumable, differences, newest_last_checkpoint, resume_settings
from psfm.training.train import check_data, train
from tests.training.conftest import tiny_command


class _Crash(Exception):
    pass


def _crash_after(step: int, monkeypatch) -> None:
    """The next ``train`` dies when the batch for step ``step + 1`` arrives (its last checkpoint is at ``step``)."""
    original = SceneDataModule.on_after_batch_transfer

    def crash(self, batch, index):
        if self.trainer.training and self.trainer.global_step == step:
            monkeypatch.setattr(SceneDataModule, "on_after_batch_transfer", original)
            raise _Crash
        return original(self, batch, index)

    monkeypatch.setattr(SceneDataModule, "on_after_batch_transfer", crash)


def _count_training_batches(monkeypatch) -> list[int]:
    """The global step of each training batch the next ``train`` calls run (so where they resumed)."""
    steps: list[int] = []
    original = SceneDataModule.on_after_batch_transfer

    def count(self, batch, index):
        if self.trainer.training:
            steps.append(self.trainer.global_step)
        return original(self, batch, index)

    monkeypatch.setattr(SceneDataModule, "on_after_batch_transfer", count)
    return steps


def _checkpoint(path) -> dict:
    return torch.load(path, weights_only=True)


def _best_state(checkpoint: dict) -> dict:
    return next(state for key, state in checkpoint["callbacks"].items() if "val/loss" in key)


def test_a_run_moved_between_a_kill_and_the_resume_keeps_writing_last_ckpt(tiny_world, tmp_path, monkeypatch):
    """Lightning forgot its file names after a move and wrote ``last-v1.ckpt``; resume=auto reads ``last.ckpt``.

    So every later re-run restarted from the step before the move, and wrote ``last-v2.ckpt``, ...
    """
    _crash_after(4, monkeypatch)
    with pytest.raises(_Crash):
        train(tiny_command(tiny_world, tmp_path / "before", max_steps=6))
    shutil.move(tmp_path / "before", tmp_path / "after")
    moved = tmp_path / "after" / "checkpoints"

    assert train(tiny_command(tiny_world, tmp_path / "after", max_steps=6))["global_step"] == 6
    assert sorted(path.name for path in moved.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert _checkpoint(moved / "last.ckpt")["global_step"] == 6

    assert train(tiny_command(tiny_world, tmp_path / "after", max_steps=8))["global_step"] == 8  # from 6, not 4
    assert sorted(path.name for path in moved.iterdir()) == ["best.ckpt", "last.ckpt"]
    last = _checkpoint(moved / "last.ckpt")
    assert last["global_step"] == 8
    best = _best_state(last)  # the best score followed the folder instead of being forgotten
    assert best["best_model_score"] is not None and best["best_model_path"] == str(moved.resolve() / "best.ckpt")


def test_a_folder_already_holding_versioned_last_files_resumes_from_the_newest(tiny_world, tmp_path, monkeypatch):
    """Run folders that the old behaviour left with ``last.ckpt`` at step 2 and ``last-v1.ckpt`` at step 4."""
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=2, limit_val_batches=0)
    train(command)
    checkpoints = tmp_path / "run" / "checkpoints"
    shutil.copy(checkpoints / "last.ckpt", tmp_path / "step2.ckpt")
    train(replace(command, trainer=replace(command.trainer, max_steps=4)))
    (checkpoints / "last.ckpt").rename(checkpoints / "last-v1.ckpt")
    shutil.copy(tmp_path / "step2.ckpt", checkpoints / "last.ckpt")

    trained = _count_training_batches(monkeypatch)
    assert train(replace(command, trainer=replace(command.trainer, max_steps=6)))["global_step"] == 6
    assert trained == [4, 5]  # resumed at step 4 (last-v1.ckpt), not 2
    assert _checkpoint(checkpoints / "last.ckpt")["global_step"] == 6


def test_temporaries_of_a_save_killed_midway_are_removed_on_start(tiny_world, tmp_path, caplog):
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=2, limit_val_batches=0)
    train(command)
    checkpoints = tmp_path / "run" / "checkpoints"
    stale = [checkpoints / ".last.ckpt.k3q9x0ab.tmp", checkpoints / ".step000004.ckpt.abc.tmp"]
    kept = [checkpoints / "notes.tmp", checkpoints / ".hidden.tmp", checkpoints / "keep.txt"]
    for path in stale + kept:
        path.write_bytes(b"half a checkpoint")

    with caplog.at_level(logging.INFO, logger="psfm.pretrain"):
        train(replace(command, trainer=replace(command.trainer, max_steps=3)))

    assert [path for path in stale if path.exists()] == []
    assert all(path.exists() for path in kept)  # only AtomicFile's temporaries of .ckpt files go
    assert all(path.name in caplog.text for path in stale)


@pytest.fixture
def finished_run(tiny_world, tmp_path):
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=2, limit_val_batches=0)
    train(command)
    command.trainer.max_steps = 3  # extending a run is what resuming it with another max_steps means
    return command


def test_resuming_with_other_optimizer_batch_size_or_data_is_refused_naming_each(finished_run, tmp_path):
    other_data = tmp_path / "other_world"
    shutil.copytree(finished_run.datamodule.train, other_data)
    changed = replace(
        finished_run,
        optim=replace(finished_run.optim, lr=5e-4),
        datamodule=replace(finished_run.datamodule, batch_size=3, train=str(other_data)),
    )
    with pytest.raises(UsageError) as refused:
        train(changed)
    message = str(refused.value)
    assert "\n" not in message and "resume=force" in message
    assert "optim.lr: 0.001 in the checkpoint, 0.0005 now" in message
    assert "datamodule.batch_size: 2 in the checkpoint, 3 now" in message
    assert f"datamodule.train: {finished_run.datamodule.train!r} in the checkpoint" in message
    assert "trainer.max_steps" not in message


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: replace(c, optim=replace(c.optim, warmup_steps=5)), id="optim"),
        pytest.param(lambda c: replace(c, datamodule=replace(c.datamodule, image_size=[16, 16])), id="image_size"),
        pytest.param(
            lambda c: replace(c, datamodule=replace(c.datamodule, views=replace(c.datamodule.views, max_views=5))),
            id="views",
        ),
    ],
)
def test_each_setting_a_resume_must_keep_is_compared(finished_run, change):
    with pytest.raises(UsageError, match="resume=force"):
        train(change(finished_run))


def test_resume_force_resumes_other_settings_but_never_another_model(finished_run, caplog):
    changed = replace(finished_run, optim=replace(finished_run.optim, lr=5e-4), resume="force")
    with caplog.at_level(logging.INFO, logger="psfm.pretrain"):
        assert train(changed)["global_step"] == 3
    last = str(Path(finished_run.run_dir) / "checkpoints" / "last.ckpt")
    # the warning and the log name the checkpoint (mutation testing: either path dropped survived)
    assert f"resume=force: resuming {last} with other settings (optim.lr: 0.001 in the checkpoint, 0.0005 now)" in (
        caplog.text
    )
    assert f"resuming from {last}" in [record.getMessage() for record in caplog.records]

    encoder = replace(finished_run.model.encoder, num_latents=8)
    other_model = replace(changed, model=replace(finished_run.model, encoder=encoder))
    with pytest.raises(UsageError, match=r"different model configuration \(model.encoder.num_latents: 4"):
        train(other_model)


class _RunsOnLoad:
    """Unpickling this calls ``Path.touch(marker)``: a checkpoint carrying it proves whether code ran on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_the_newest_last_file_is_chosen_by_its_step_and_torn_or_unsafe_files_never_win(tmp_path, caplog):
    """``resume=auto`` reads each ``last*.ckpt``'s step with the safe loader (mutation testing: the fallback
    step of an unreadable file, and ``weights_only``, survived)."""
    assert newest_last_checkpoint(tmp_path) is None
    torch.save({"global_step": 0}, tmp_path / "last.ckpt")
    assert newest_last_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    (tmp_path / "last-v1.ckpt").write_bytes(b"torn")  # a save killed midway
    marker = tmp_path / "code_ran"
    torch.save({"global_step": 9, "payload": _RunsOnLoad(marker)}, tmp_path / "last-v2.ckpt")
    assert newest_last_checkpoint(tmp_path) == tmp_path / "last.ckpt"  # step 0 beats torn and unsafe files
    assert not marker.exists()  # nothing was unpickled
    torch.save({"global_step": 3}, tmp_path / "last-v3.ckpt")
    with caplog.at_level(logging.WARNING, logger="psfm.pretrain"):
        assert newest_last_checkpoint(tmp_path) == tmp_path / "last-v3.ckpt"
    # a versioned file is read with a warning naming it, its step and the files it beat
    message = "the newest of last.ckpt, last-v1.ckpt, last-v2.ckpt, last-v3.ckpt"
    assert caplog.messages == [f"resuming from {tmp_path / 'last-v3.ckpt'}, at step 3 {message}"]


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_without_running_it(tmp_path):
    """``resume=`` reads a checkpoint with the safe loader: a foreign file is refused by name, nothing runs
    (mutation testing: ``weights_only=False`` survived)."""
    marker, path = tmp_path / "code_ran", tmp_path / "foreign.ckpt"
    torch.save({"hyper_parameters": {"model": {}}, "payload": _RunsOnLoad(marker)}, path)
    # named with the loader's own error (mutation testing: the error's class name lost survived)
    with pytest.raises(UsageError, match=r"foreign.ckpt: not a readable psfm checkpoint \(UnpicklingError: "):
        check_resumable(path, model={}, settings={})
    assert not marker.exists()


def test_a_checkpoint_from_before_the_stored_settings_is_checked_on_its_optimizer(tmp_path):
    """Older checkpoints hold no resume settings, only the optimizer's in their hyperparameters: the same one
    resumes, another is named (mutation testing: that fallback under another section name survived)."""
    path = tmp_path / "old.ckpt"
    torch.save({"hyper_parameters": {"model": {"dim": 8}, "optim": {"lr": 0.001}}}, path)
    settings = {"optim": {"lr": 0.001}, "datamodule": {"batch_size": 4}}
    assert check_resumable(path, model={"dim": 8}, settings=settings) == []
    settings["optim"]["lr"] = 0.01
    with pytest.raises(UsageError, match=r"optim.lr: 0.001 in the checkpoint, 0.01 now"):
        check_resumable(path, model={"dim": 8}, settings=settings)


def test_differences_name_keys_present_on_one_side_only():
    """A key added or dropped since the checkpoint is a difference too (mutation testing: only shared keys
    were compared and it survived)."""
    old = {"optim": {"lr": 1e-3, "betas": [0.9, 0.95]}, "gone": 1}
    new = {"optim": {"lr": 1e-3, "betas": (0.9, 0.95), "decay": 0.05}}
    assert differences(old, new, "settings") == [
        "settings.gone: 1 in the checkpoint, None now",
        "settings.optim.decay: None in the checkpoint, 0.05 now",
    ]


def test_a_setting_added_since_the_checkpoint_resumes_at_its_default_and_is_named_otherwise(tmp_path):
    """A run made before ``datamodule.views.target_overlap_from`` existed stored no value for it: resuming with
    psfm's default must not need ``resume=force`` (it refused, naming ``None in the checkpoint``); another value
    is still a change. A model key gets no such leniency: it could mean other weights."""
    from psfm.training.resume import default_settings

    command = tiny_command(Path("unused"), tmp_path)
    stored = resume_settings(command)
    del stored["datamodule"]["views"]["target_overlap_from"]
    path = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": {"model": {"dim": 8}}, "psfm_resume_settings": stored}, path)
    assert check_resumable(path, model={"dim": 8}, settings=resume_settings(command), defaults=default_settings()) == []
    others = replace(command.datamodule.views, target_overlap_from="others")
    other = replace(command, datamodule=replace(command.datamodule, views=others))
    with pytest.raises(UsageError, match=r"views.target_overlap_from: None in the checkpoint, 'others' now"):
        check_resumable(path, model={"dim": 8}, settings=resume_settings(other), defaults=default_settings())
    with pytest.raises(UsageError, match=r"model.qk_norm: None in the checkpoint, True now"):
        check_resumable(path, model={"dim": 8, "qk_norm": True}, settings=resume_settings(command))


def test_a_run_from_before_a_setting_existed_resumes_with_resume_auto(finished_run):
    """``train`` hands psfm's defaults to the check: a checkpoint whose stored settings lack a key added since
    (here ``target_overlap_from``) resumes and extends without ``resume=force``."""
    path = Path(finished_run.run_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    del checkpoint["psfm_resume_settings"]["datamodule"]["views"]["target_overlap_from"]
    torch.save(checkpoint, path)
    train(finished_run)
    assert _checkpoint(path)["global_step"] == 3


def test_starting_over_in_a_used_run_folder_overwrites_last_ckpt_instead_of_versioning_it(finished_run):
    """``resume=never`` in a folder holding ``last.ckpt``: the new run's newest step must be what resume=auto
    reads next time, so no ``last-v1.ckpt`` beside it (mutation testing: Lightning's version counter left on
    survived)."""
    command = replace(finished_run, resume="never")
    command.trainer.max_steps = 1
    train(command)
    checkpoints = Path(command.run_dir) / "checkpoints"
    assert sorted(path.name for path in checkpoints.glob("last*.ckpt")) == ["last.ckpt"]
    assert _checkpoint(checkpoints / "last.ckpt")["global_step"] == 1


def test_a_validation_folder_is_not_checked_when_validation_is_off(tiny_world, tmp_path):
    """``limit_val_batches=0`` trains without validation, so a missing val folder must not stop it; with
    validation on it does, naming the key (mutation testing: the val rule never matching survived)."""
    config = replace(tiny_command(tiny_world, tmp_path).datamodule, val=str(tmp_path / "no_such_val"))
    check_data(config, validate=False)
    with pytest.raises(MissingPathError, match="datamodule.val") as raised:
        check_data(config, validate=True)
    message = str(raised.value)  # the error, then the way out (mutation testing: the separator lost survived)
    assert message.endswith("or a glob); datamodule.val=null trains without validation"), message


def test_train_clips_at_optim_grad_clip_and_validates_with_a_single_val_batch(tiny_world, tmp_path, monkeypatch):
    """What ``train`` hands Lightning: the clip value of ``optim.grad_clip`` at every step, and validation
    with ``limit_val_batches=1`` (mutation testing: no clip value, and validation needing 2 batches, survived)."""
    from psfm.training.module import PretrainModule

    clip_values = []
    original = PretrainModule.configure_gradient_clipping

    def record(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip_values.append(gradient_clip_val)
        return original(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    monkeypatch.setattr(PretrainModule, "configure_gradient_clipping", record)
    validated = []
    validation_step = PretrainModule.validation_step
    monkeypatch.setattr(
        PretrainModule,
        "validation_step",
        lambda self, *a, **k: validated.append(self.global_step) or validation_step(self, *a, **k),
    )
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=2, limit_val_batches=1, val_every_steps=2)
    command = replace(command, optim=replace(command.optim, grad_clip=0.5))
    metrics = train(command)
    assert clip_values == [0.5, 0.5]
    assert "val/loss" in metrics
    # one validation batch, after step 2, and no sanity check before training: its batch would cost a
    # validation stream start for nothing, as its metrics are discarded (mutation testing: 1 sanity step survived)
    assert validated == [2]


def test_local_data_is_compared_by_absolute_path_and_streamed_or_remote_data_as_typed(tmp_path, monkeypatch):
    """The same folder typed from another working directory is the same data; a ``pipe:`` command or a URL
    is not a path and must not become one (mutation testing: ``pipe:`` turned into a path survived)."""
    monkeypatch.chdir(tmp_path)
    command = tiny_command(Path("unused"), tmp_path)
    sources = "world/train::pipe:cat /data/shard-{000..009}.tar::s3://bucket/shards"
    command = replace(command, datamodule=replace(command.datamodule, train=sources))
    assert resume_settings(command)["datamodule"]["train"] == "::".join(
        [str(tmp_path / "world" / "train"), "pipe:cat /data/shard-{000..009}.tar", "s3://bucket/shards"]
    )


def test_a_resume_with_another_accumulation_is_refused_naming_the_key(tmp_path):
    """Micro-batches per step change what a step is; the message names the user's key (mutation testing: the
    key stored under another name survived, both sides of the comparison using it)."""
    command = tiny_command(Path("unused"), tmp_path)
    path = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": {"model": {}}, "psfm_resume_settings": resume_settings(command)}, path)
    other = replace(command, trainer=replace(command.trainer, accumulate_grad_batches=4))
    with pytest.raises(UsageError, match=r"trainer.accumulate_grad_batches: 1 in the checkpoint, 4 now"):
        check_resumable(path, model={}, settings=resume_settings(other))


def test_a_missing_folder_is_named_with_the_ways_out_that_apply(tiny_world, tmp_path, monkeypatch):
    """No hint: the resolver's message alone. The default folders (not made yet): run ``psfm world``, and for
    validation also the way to train without it (mutation testing: a trailing separator, and the hints' ", or "
    changed, survived)."""
    from psfm.datamodules.shardlists import resolve_shards

    monkeypatch.chdir(tmp_path)
    elsewhere = replace(DataModuleConfig(), train=str(tmp_path / "no_such_train"))
    with pytest.raises(MissingPathError) as plain:
        resolve_shards(elsewhere.train, key="datamodule.train")
    with pytest.raises(MissingPathError) as raised:
        check_data(elsewhere, validate=False)
    assert str(raised.value) == str(plain.value)
    world = "run `psfm world` first (it writes data/world/train and data/world/val)"
    with pytest.raises(MissingPathError) as raised:
        check_data(DataModuleConfig(), validate=False)
    assert str(raised.value).endswith(f"; {world}"), raised.value
    with pytest.raises(MissingPathError) as raised:
        check_data(replace(DataModuleConfig(), train=str(tiny_world / "train")), validate=True)
    assert str(raised.value).endswith(f"; {world}, or datamodule.val=null trains without validation"), raised.value
