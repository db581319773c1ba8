"""Every ``psfm pretrain`` experiment composes through Hydra against the typed schema, and bad keys fail by name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.resources import files

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

import psfm.commands.pretrain  # noqa: F401 - registers the pretrain_schema the defaults list names
from psfm.training.config import PretrainCommand, command_from_config
from psfm.training.model import PretrainModel
from tests.conftest import make_batch

EXPERIMENTS = sorted(
    path.name.removesuffix(".yaml")
    for path in (files("psfm.configs") / "experiment").iterdir()
    if path.name.endswith(".yaml")
)
# experiments whose weights only the user has: they compose, but building them is the user's job
NEEDS_LOCAL_WEIGHTS = {"spa3r"}


@pytest.fixture(scope="module")
def hydra_context() -> Iterator[None]:
    with initialize_config_module(config_module="psfm.configs", version_base="1.3"):
        yield


def pretrain_config(*overrides: str) -> DictConfig:
    return compose("pretrain", overrides=list(overrides))


def test_experiments_are_found():
    assert "world_tiny" in EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_against_the_schema(hydra_context, experiment):
    cfg = pretrain_config(f"experiment={experiment}")

    assert cfg.experiment == experiment
    assert cfg.run_dir == f"outputs/pretrain/{experiment}"
    assert cfg.model.teachers, "an experiment without teachers cannot train"
    if experiment not in NEEDS_LOCAL_WEIGHTS:
        command = command_from_config(cfg)
        assert isinstance(command, PretrainCommand)
        assert command.model.objective.decoder.camera_encoding in ("prope", "plucker")


def test_default_experiment_is_world_tiny(hydra_context):
    assert pretrain_config().experiment == "world_tiny"


@pytest.mark.parametrize("experiment", sorted(set(EXPERIMENTS) - NEEDS_LOCAL_WEIGHTS))
def test_experiment_builds_a_pretrain_model(hydra_context, experiment):
    command = command_from_config(pretrain_config(f"experiment={experiment}"))

    torch.manual_seed(0)
    model = PretrainModel(command.model)

    assert model.encoder.dim == command.model.encoder.dim
    assert model.encoder.num_tokens == command.model.encoder.num_latents
    assert set(model.teachers) == set(command.model.teachers)
    assert model.objective.decoder.camera_encoding == command.model.objective.decoder.camera_encoding
    if experiment == "world_tiny":  # small enough to take a training step here
        size = command.datamodule.image_size[0]
        out = model(make_batch(batch_size=1, num_views=3, num_context=2, size=size))
        out["loss"].backward()
        assert torch.isfinite(out["loss"])


SPA3R_WEIGHTS = {
    "model.backbone.checkpoint": "/weights/dinov2_vitl14.safetensors",
    "model.teachers.semantic.options.checkpoint": "/weights/dinov2_vitl14.safetensors",
    "model.teachers.geometry.options.factory": "my_vggt.teacher:build",
}


def spa3r_without(left_out: str) -> DictConfig:
    if "spa3r" not in EXPERIMENTS:
        pytest.skip("configs/experiment/spa3r.yaml does not exist yet")
    return pretrain_config(
        "experiment=spa3r", *(f"{key}={value}" for key, value in SPA3R_WEIGHTS.items() if key != left_out)
    )


@pytest.mark.parametrize("left_out", [key for key in SPA3R_WEIGHTS if key.startswith("model.teachers.")])
def test_spa3r_refuses_to_build_without_the_teacher_weights(hydra_context, left_out):
    with pytest.raises(MissingMandatoryValue, match=f"full_key: {re.escape(left_out)}"):
        command_from_config(spa3r_without(left_out))


def test_spa3r_refuses_to_build_without_the_backbone_weights(hydra_context):
    command = command_from_config(spa3r_without("model.backbone.checkpoint"))
    with pytest.raises(ValueError, match=r"model\.backbone\.checkpoint is required by this experiment"):
        PretrainModel(command.model)


def test_spa3r_composes_with_every_weight_path(hydra_context):
    command = command_from_config(spa3r_without(""))

    assert command.model.backbone.frozen
    assert command.model.backbone.checkpoint == SPA3R_WEIGHTS["model.backbone.checkpoint"]
    assert command.model.teachers["geometry"]["options"]["factory"] == "my_vggt.teacher:build"


@pytest.mark.parametrize(
    "override", ["model.encoder.dimm=3", "datamodule.pose_noise.rotation=1", "model.objective.decoder.camera=prope"]
)
def test_misspelled_key_fails_naming_it(hydra_context, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=f"Could not override '{key}'"):
        pretrain_config(override)


def test_misspelled_key_added_with_plus_still_fails_naming_it(hydra_context):
    """Hydra's own hint for a misspelled key is ``+key=value``; that must not train with the key silently dropped."""
    cfg = pretrain_config("+model.encoder.dimm=3")

    with pytest.raises(ValueError, match=r"model\.encoder\.dimm"):
        command_from_config(cfg)
    assert isinstance(command_from_config(pretrain_config()), PretrainCommand)


def test_bad_value_type_fails_naming_the_key(hydra_context):
    with pytest.raises(ConfigCompositionException, match="model.encoder.depth"):
        pretrain_config("model.encoder.depth=deep")


def test_plus_adds_a_teacher(hydra_context):
    cfg = pretrain_config("+model.teachers.extra.name=ema", "+model.teachers.extra.weight=0.5")
    command = command_from_config(cfg)

    assert set(command.model.teachers) == {"pixels", "extra"}
    model = PretrainModel(command.model)
    assert type(model.teachers["extra"]).__name__ == "EMATeacher"
    assert model.objective.teacher_weights == {"pixels": 1.0, "extra": 0.5}


def test_unknown_teacher_key_fails_naming_it(hydra_context):
    command = command_from_config(pretrain_config("+model.teachers.pixels.wieght=2"))

    with pytest.raises(ValueError, match=r"model\.teachers\.pixels: unknown key\(s\) \['wieght'\]"):
        PretrainModel(command.model)


def test_unknown_teacher_name_fails_naming_it(hydra_context):
    command = command_from_config(pretrain_config("+model.teachers.extra.name=pixles"))

    with pytest.raises(KeyError, match=r"unknown teacher 'pixles'; did you mean 'pixels'\?"):
        PretrainModel(command.model)


def test_spa3r_sets_the_papers_recipe_knobs(hydra_context):
    command = command_from_config(spa3r_without(""))

    assert command.model.objective.target_norm == "none"
    assert tuple(command.optim.betas) == (0.9, 0.999) and command.optim.decay_all
    assert command.optim.grad_clip_mode == "global" and command.optim.grad_clip == 1.0
    assert not command.datamodule.augment and command.datamodule.crop == "center"
    views = command.datamodule.views
    assert (views.strategy, views.min_gap, views.max_gap, views.min_views, views.max_views) == ("window", 2, 6, 4, 12)
    assert command.model.teachers["geometry"]["options"]["joint_views"] is True


def test_spa3r_takes_a_joint_vggt_backbone_through_the_module_hook(hydra_context):
    overrides = [
        "model.backbone.name=module",
        "model.backbone.require_checkpoint=false",
        "+model.backbone.overrides={factory: my_vggt.backbone:build, kwargs: {checkpoint: /w.pt}, joint_views: true}",
    ]
    cfg = pretrain_config("experiment=spa3r", *(f"{key}={value}" for key, value in SPA3R_WEIGHTS.items()), *overrides)

    backbone = command_from_config(cfg).model.backbone
    assert backbone.name == "module" and backbone.overrides["joint_views"] is True


def test_new_recipe_options_keep_psfms_defaults(hydra_context):
    command = command_from_config(pretrain_config())

    assert not command.optim.decay_all and command.optim.grad_clip_mode == "per_group"
    assert command.model.objective.target_norm == "layernorm" and command.datamodule.views.strategy == "random"
