"""End-to-end pretraining on a tiny world: metrics, checkpoints, export -> psfm.load, faults, resume."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from psfm import load
from psfm.datamodules.datamodule import SceneDataModule
from psfm.training.model import PretrainModel
from psfm.training.module import NonFiniteLossError, PretrainModule
from psfm.training.train import train
from tests.training.conftest import tiny_command


def test_train_logs_checkpoints_and_exports_a_loadable_encoder(tiny_world, tmp_path):
    command = tiny_command(tiny_world, tmp_path / "run")
    metrics = train(command)

    assert metrics["global_step"] == 6 and metrics["nan_steps"] == 0
    assert metrics["world_size"] == 1 and metrics["global_rank"] == 0
    assert metrics["data/skipped"] == 0 and metrics["data/skipped_total"] == 0  # what the final table shows
    for key in (
        "train/loss",
        "val/loss",
        "val/pixels/target_loss",
        "val/pixels/ref_copy_nearest",
        "val/depth_probe/abs_rel",
    ):
        assert math.isfinite(metrics[key]), key
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "config.yaml").read_text().count("vit_test") == 1
    header = (run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss" in header and "val/pixels/target_loss" in header
    assert not list(run.rglob("*.tmp"))

    encoder = load(run / "export")
    assert encoder.num_tokens == 4 and encoder.dim == 32 and not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    # identical latents to the trained module's encoder, rebuilt from the checkpoint without the export
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    module = PretrainModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    images = torch.rand(2, 3, 3, 32, 32)
    with torch.no_grad():
        expected = module.model.encoder.eval()(images).latents
    assert torch.equal(encoder(images), expected)
    exported = load_file(run / "export" / "encoder.safetensors")
    assert all(not key.startswith(("objective", "teachers")) for key in exported)


def test_export_load_refuses_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no psfm encoder export"):
        load(tmp_path)
    (tmp_path / "encoder.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a psfm-encoder v1 export"):
        load(tmp_path)


def _poison(calls: set[int], monkeypatch) -> dict:
    """Make ``PretrainModel.forward`` return a NaN loss on the chosen (1-based) calls.

    Records, for the call after each poisoned one, whether the trainable weights were unchanged.
    """
    record = {"calls": 0, "unchanged_after_nan": []}
    original = PretrainModel.forward

    def forward(self, batch):
        weights = [param.detach().clone() for _, param in self.trainable_parameters()]
        if record.get("snapshot") is not None:
            same = all(torch.equal(a, b) for a, b in zip(record["snapshot"], weights, strict=True))
            record["unchanged_after_nan"].append(same)
            record["snapshot"] = None
        out = original(self, batch)
        record["calls"] += 1
        if record["calls"] in calls:
            out["loss"] = out["loss"] * float("nan")
            record["snapshot"] = weights
        return out

    monkeypatch.setattr(PretrainModel, "forward", forward)
    return record


def test_nan_steps_are_skipped_and_counted(tiny_world, tmp_path, monkeypatch):
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=5, limit_val_batches=0)
    record = _poison({2, 4}, monkeypatch)
    metrics = train(command)
    assert metrics["nan_steps"] == 2 and record["calls"] == 5
    assert record["unchanged_after_nan"] == [True, True]  # a NaN step updates nothing
    assert metrics["train/nan_steps"] == 2


def test_too_many_consecutive_nan_steps_stop_the_run_with_a_clear_message(tiny_world, tmp_path, monkeypatch):
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=10, limit_val_batches=0, max_nan_steps=3)
    _poison({2, 3, 4}, monkeypatch)
    with pytest.raises(NonFiniteLossError, match="NaN/inf on 3 consecutive steps"):
        train(command)


def test_scattered_nan_steps_never_stop_the_run_however_many(tiny_world, tmp_path, monkeypatch):
    """The limit is on *consecutive* NaN steps: four NaN steps, each followed by a finite one, stay below 3.

    A counter that only ever grows (total instead of consecutive) would abort at the third NaN (step 5).
    """
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=8, limit_val_batches=0, max_nan_steps=3)
    record = _poison({1, 3, 5, 7}, monkeypatch)
    metrics = train(command)
    assert record["calls"] == 8 and metrics["global_step"] == 8
    assert metrics["nan_steps"] == 4  # still counted in total, for the logs


def test_trainer_settings_reach_lightning_and_the_summary_times_the_run(tiny_world, tmp_path, monkeypatch):
    """Two micro-batches per optimizer step make 2 steps out of 4 forward passes; ``trainer.compile`` compiles
    the transformer blocks (recorded here, not run: compiling takes minutes on a CPU); the returned summary
    carries the run's wall time; a run folder's missing parents are made (mutation testing: each dropped on
    its way survived)."""
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *args, **kwargs: compiled.append(type(self).__name__))
    run_dir = tmp_path / "runs" / "2026" / "run"  # a new folder's parents are made too
    command = tiny_command(
        tiny_world, run_dir, max_steps=2, limit_val_batches=0, accumulate_grad_batches=2, compile=True
    )
    record = _poison(set(), monkeypatch)
    metrics = train(command)
    assert metrics["global_step"] == 2 and record["calls"] == 4
    assert compiled and set(compiled) <= {"Block", "TransformerBlock", "CrossAttentionBlock"}, compiled
    assert 0 < metrics["seconds"] < 600


def test_resume_refuses_a_checkpoint_of_another_model(tiny_world, tmp_path):
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=2, limit_val_batches=0)
    train(command)
    other = replace(command, model=replace(command.model, encoder=replace(command.model.encoder, num_latents=8)))
    other.trainer.max_steps = 4
    with pytest.raises(ValueError, match=r"different model configuration \(model.encoder.num_latents: 4"):
        train(other)
    missing = replace(command, resume=str(tmp_path / "nope.ckpt"))
    with pytest.raises(FileNotFoundError, match="nope.ckpt: checkpoint not found"):
        train(missing)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.ckpt: not a readable psfm checkpoint"):
        train(replace(command, resume=str(tmp_path / "junk.ckpt")))


class _Crash(Exception):
    pass


def test_crash_then_resume_gives_the_uninterrupted_parameters(tiny_world, tmp_path, monkeypatch):
    """A run that dies after step 4 and is re-run ends with bit-identical weights (CPU, deterministic)."""
    straight = tiny_command(tiny_world, tmp_path / "straight", max_steps=7)
    train(straight)

    crashed = tiny_command(tiny_world, tmp_path / "crashed", max_steps=7)
    original = SceneDataModule.on_after_batch_transfer

    def crash_on_fifth_batch(self, batch, index):
        if self.trainer.training and self.trainer.global_step == 4:
            raise _Crash
        return original(self, batch, index)

    monkeypatch.setattr(SceneDataModule, "on_after_batch_transfer", crash_on_fifth_batch)
    with pytest.raises(_Crash):
        train(crashed)
    monkeypatch.setattr(SceneDataModule, "on_after_batch_transfer", original)
    assert torch.load(tmp_path / "crashed/checkpoints/last.ckpt", weights_only=True)["global_step"] == 4
    train(crashed)  # resume=auto picks up last.ckpt

    def last(run):
        return torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)

    final_straight, final_resumed = last("straight")["state_dict"], last("crashed")["state_dict"]
    assert final_straight.keys() == final_resumed.keys()
    different = [key for key in final_straight if not torch.equal(final_straight[key], final_resumed[key])]
    assert different == []
    # the data position too: a counter restarted at 0 by the resume would make a second resume replay batches
    assert last("crashed")["SceneDataModule"] == last("straight")["SceneDataModule"]
    # max_steps closed epoch 0 after 7 of its 12 batches, then last.ckpt was written: Lightning resumes that at epoch
    # 1's start, so the data must too (positions inside an epoch: tests/training/test_resume.py)
    assert last("straight")["SceneDataModule"] == {"epoch": 1, "consumed_batches": 0, "skipped_total": 0}


def test_a_finished_run_checkpoints_its_last_step_and_a_rerun_adds_none(tiny_world, tmp_path):
    """7 steps with a checkpoint every 2: ``last.ckpt`` must hold step 7, not 6, so re-running repeats nothing."""
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=7)
    train(command)
    path = tmp_path / "run/checkpoints/last.ckpt"
    first = torch.load(path, weights_only=True)
    assert first["global_step"] == 7

    again = train(command)  # resume=auto finds a finished run

    assert again["global_step"] == 7
    second = torch.load(path, weights_only=True)
    assert all(torch.equal(first["state_dict"][key], value) for key, value in second["state_dict"].items())


@pytest.mark.parametrize("frozen", [False, True])
def test_random_init_twin_redraws_what_psfm_trained_and_keeps_a_frozen_backbone(tmp_path, frozen):
    from psfm.export import export_encoder, random_init_twin
    from psfm.training.config import BackboneConfig, EncoderConfig
    from psfm.training.model import build_encoder

    backbone = BackboneConfig(name="vit_test", img_size=32, frozen=frozen, overrides={"depth": 1, "embed_dim": 32})
    encoder_config = EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1)
    torch.manual_seed(123)
    encoder = build_encoder(backbone, encoder_config)
    export_encoder(encoder, backbone, encoder_config, (32, 32), tmp_path)
    twin = random_init_twin(tmp_path, seed=0).encoder
    exported = encoder.state_dict()
    state = twin.state_dict()
    same = {name: torch.equal(value, exported[name]) for name, value in state.items() if value.ndim == 2}
    assert not any(same[name] for name in same if name.startswith("latent."))  # matrices redrawn (norms start at 1)
    backbone_weights = [name for name in same if name.startswith("backbone.")]
    assert all(same[name] for name in backbone_weights) == frozen
    assert torch.equal(random_init_twin(tmp_path, seed=0).encoder.latent.queries, twin.latent.queries)  # seeded


def test_the_posed_context_ablation_trains_and_is_not_exported(tiny_world, tmp_path, caplog):
    """It needs camera rays PSFM's objective gives it; images-only users (export, online probe) cannot, and
    are told so (mutation testing: either warning's words lost survived)."""
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=3)
    command.model.encoder.posed_context = True
    command.online_probe.every_steps = 2
    with caplog.at_level("WARNING", logger="psfm"):
        metrics = train(command)
    assert metrics["global_step"] == 3 and metrics["nan_steps"] == 0
    assert not (tmp_path / "run" / "export").exists()
    assert "online_probe is off: a posed_context encoder needs camera rays the probes do not give it" in caplog.text
    assert "not exported: a posed_context encoder (an ablation) cannot encode images alone" in caplog.text


def test_a_depth_input_encoder_trains_probes_online_and_exports_what_it_reads(tiny_world, tmp_path):
    """``context_input=depth``: the export says ``input: depth`` and ``psfm.load`` gives it back with it."""
    from psfm.export import load, random_init_twin

    command = tiny_command(tiny_world, tmp_path / "run", max_steps=3)
    command.model.objective.context_input = "depth"
    command.datamodule.load_depth = True
    command.online_probe.every_steps = 2
    metrics = train(command)
    assert metrics["global_step"] == 3 and metrics["nan_steps"] == 0
    assert math.isfinite(metrics["probe/floor_area_mae_ratio"])  # the online probe read depth too
    export = tmp_path / "run" / "export"
    assert json.loads((export / "encoder.json").read_text())["input"] == "depth"
    assert load(export).input_kind == "depth" and random_init_twin(export).input_kind == "depth"


def test_validation_counts_optimizer_steps_across_epochs_shorter_than_its_interval(tiny_world, tmp_path, monkeypatch):
    """Epochs of 2 batches, validation every 3 steps: it runs after steps 3 and 6, not per epoch, and Lightning
    does not refuse an interval longer than an epoch (mutation testing: ``check_val_every_n_epoch=None``
    dropped survived, every other test's epoch being longer than its interval)."""
    validated = []
    validation_step = PretrainModule.validation_step

    def record(self, *args, **kwargs):
        validated.append(self.global_step)
        return validation_step(self, *args, **kwargs)

    monkeypatch.setattr(PretrainModule, "validation_step", record)
    command = tiny_command(tiny_world, tmp_path / "run", max_steps=6, limit_val_batches=1, val_every_steps=3)
    command = replace(command, datamodule=replace(command.datamodule, samples_per_epoch=4))  # 2 batches of 2
    metrics = train(command)
    assert validated == [3, 6] and metrics["global_step"] == 6
