"""Learning-rate schedule (warmup + cosine) and which parameters are exempt from weight decay."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from psfm.errors import UsageError
from psfm.training.config import OptimConfig
from psfm.training.model import PretrainModel
from psfm.training.optim import build_optimizer, lr_factor, parameter_groups
from tests.training.conftest import tiny_command


def tiny_model() -> PretrainModel:
    return PretrainModel(tiny_command(Path("unused"), Path("unused")).model)


def test_warmup_ramps_linearly_to_one():
    factors = [lr_factor(step, total_steps=100, warmup_steps=4, min_ratio=0.1) for step in range(5)]

    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0)  # the first cosine step starts at the top
    assert lr_factor(0, 100, 0, 0.1) == pytest.approx(1.0)  # no warmup: full lr at once


def test_cosine_runs_from_one_down_to_min_ratio_and_stays_there():
    total, warmup, min_ratio = 50, 10, 0.2
    factors = [lr_factor(step, total, warmup, min_ratio) for step in range(warmup, total + 5)]

    assert factors[0] == pytest.approx(1.0)
    assert factors[total - warmup] == pytest.approx(min_ratio)
    assert factors[-1] == pytest.approx(min_ratio)  # past the end: no second cycle
    assert all(later <= earlier + 1e-12 for earlier, later in zip(factors, factors[1:], strict=False))
    assert all(min_ratio - 1e-12 <= factor <= 1.0 for factor in factors)
    middle = lr_factor(warmup + (total - warmup) // 2, total, warmup, min_ratio)
    assert middle == pytest.approx(min_ratio + (1 - min_ratio) / 2)  # cosine: halfway in lr at halfway in steps
    quarter = lr_factor(warmup + (total - warmup) // 4, total, warmup, min_ratio)
    expected = min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * 10 / 40))
    assert quarter == pytest.approx(expected)


def test_schedule_survives_warmup_as_long_as_training():
    assert lr_factor(9, total_steps=10, warmup_steps=10, min_ratio=0.0) == pytest.approx(1.0)
    assert lr_factor(10, total_steps=10, warmup_steps=10, min_ratio=0.0) == pytest.approx(1.0)


def test_no_decay_on_biases_norms_learned_tokens_and_position_embeddings():
    model = tiny_model()
    named = model.trainable_parameters()

    decay, no_decay = parameter_groups(named, weight_decay=0.05)

    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = {id(param): name for name, param in named}
    exempt = {ids[id(param)] for param in no_decay["params"]}
    decayed = {ids[id(param)] for param in decay["params"]}
    assert exempt.isdisjoint(decayed) and exempt | decayed == set(ids.values())
    for name in (
        "encoder.latent.queries",
        "encoder.latent.registers",
        "encoder.backbone.model.pos_embed",
        "encoder.backbone.model.cls_token",
        "encoder.latent.input_proj.bias",
        "encoder.latent.transformer.norm.weight",
        "encoder.latent.transformer.blocks.0.attn.q_norm.weight",
        "objective.decoder.transformer.norm.bias",
        "objective.heads.pixels.net.0.weight",  # the head's LayerNorm
    ):
        assert name in exempt, name
    for name in (
        "encoder.latent.input_proj.weight",
        "encoder.backbone.model.patch_embed.proj.weight",
        "objective.decoder.ray_embed.weight",
        "objective.decoder.transformer.blocks.0.attn.qkv.weight",
        "objective.heads.pixels.net.1.weight",
    ):
        assert name in decayed, name
    assert all(param.ndim >= 2 for param in decay["params"])


def test_learned_tokens_of_timm_backbones_are_exempt_too():
    named = [
        (f"encoder.backbone.model.{name}", torch.nn.Parameter(torch.zeros(1, 4, 8)))
        for name in ("reg_token", "dist_token", "mask_token")
    ]
    named.append(("objective.decoder.ray_embed.weight", torch.nn.Parameter(torch.zeros(8, 3))))

    decay, no_decay = parameter_groups(named, weight_decay=0.1)

    assert len(no_decay["params"]) == 3 and len(decay["params"]) == 1


def test_build_optimizer_applies_the_schedule_per_step():
    model = tiny_model()
    optimizer, schedule = build_optimizer(
        model.trainable_parameters(), OptimConfig(lr=0.01, warmup_steps=2, min_lr_ratio=0.1), total_steps=6
    )
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()

    assert rates[:3] == pytest.approx([0.005, 0.01, 0.01])
    assert rates[6:] == pytest.approx([0.001, 0.001])
    assert optimizer.param_groups[0]["lr"] == optimizer.param_groups[1]["lr"]  # both groups follow the schedule
    assert isinstance(optimizer, torch.optim.AdamW)


def test_decay_all_decays_every_parameter_in_one_group():
    model = tiny_model()
    named = model.trainable_parameters()

    groups = parameter_groups(named, weight_decay=1e-4, decay_all=True)

    assert len(groups) == 1 and groups[0]["weight_decay"] == 1e-4
    assert {id(param) for param in groups[0]["params"]} == {id(param) for _, param in named}
    optimizer, _ = build_optimizer(named, OptimConfig(weight_decay=1e-4, decay_all=True), total_steps=4)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [1e-4]
    assert OptimConfig().decay_all is False  # psfm's default keeps the exemptions


def test_a_negative_warmup_is_refused_naming_its_key():
    """(mutation testing: the ``optim`` section dropped from the message survived.)"""
    with pytest.raises(UsageError, match=r"^optim\.warmup_steps=-1 cannot work: it must be at least 0$"):
        OptimConfig(warmup_steps=-1)
