"""Every objective x camera encoding x loss views, and every teacher, through ``PretrainModel``.

Tiny everywhere: 32 px views (a 2 x 2 patch grid), one-layer 32-wide networks with two heads.
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch
from torch import nn

from psfm.encoders.inputs import depth_as_image
from psfm.geometry import intrinsics_from_fov
from psfm.objectives.field_decoder import CAMERA_ENCODINGS, FieldDecoder
from psfm.objectives.losses import feature_loss
from psfm.objectives.psfm import LOSS_VIEWS, OBJECTIVES, PSFMObjective
from psfm.teachers.base import TEACHERS
from psfm.training.config import (
    BackboneConfig,
    DecoderConfig,
    EncoderConfig,
    ModelConfig,
    ObjectiveConfig,
    TeacherConfig,
)
from psfm.training.model import PretrainModel
from psfm.types import MultiViewBatch
from tests.conftest import make_batch

FACTORY_MODULE = "psfm_test_objective_teacher"
FACTORY_SOURCE = '''
"""A user's own teacher factory: a strided conv feature map."""

from torch import nn


class TinyConv(nn.Module):
    dim = 6

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 8, 8)

    def forward(self, images):
        return self.conv(images)


def build():
    return TinyConv()
'''

# options that build every registered teacher without files beyond installed packages
TEACHER_CASES = {
    "pixels": {"name": "pixels"},
    "depth": {"name": "depth"},
    "ema": {"name": "ema", "options": {"momentum": 0.9}},
    "timm": {
        "name": "timm",
        "options": {
            "model_name": "vit_small_patch16_224",
            "img_size": 32,
            "overrides": {"depth": 1, "embed_dim": 32, "num_heads": 2},
        },
    },
    "efficientnet_lite0": {"name": "efficientnet_lite0", "options": {"img_size": 32, "layer": "stage2"}},
    "module": {"name": "module", "options": {"factory": f"{FACTORY_MODULE}:build"}},
}
NEEDS_EXTERNAL_FILES: set[str] = set()  # a teacher that only runs with user weights goes here, with a reason


@pytest.fixture
def teacher_factory(tmp_path, monkeypatch) -> Iterator[str]:
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(textwrap.dedent(FACTORY_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(FACTORY_MODULE, None)
    yield FACTORY_MODULE
    sys.modules.pop(FACTORY_MODULE, None)


def tiny_config(
    objective: str = "psfm",
    camera_encoding: str = "prope",
    loss_views: str = "all",
    teachers: dict | None = None,
    trainable: bool = True,
) -> ModelConfig:
    return ModelConfig(
        backbone=BackboneConfig(name="vit_test", img_size=32, overrides={"depth": 1, "embed_dim": 32}),
        encoder=EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1, trainable=trainable),
        objective=ObjectiveConfig(
            name=objective,
            loss_views=loss_views,
            decoder=DecoderConfig(depth=1, num_heads=2, camera_encoding=camera_encoding),
        ),
        teachers=teachers if teachers is not None else {"pixels": TeacherConfig("pixels")},
    )


def build(config: ModelConfig) -> PretrainModel:
    torch.manual_seed(0)
    return PretrainModel(config).train()


def assert_trains(model: PretrainModel, batch: MultiViewBatch) -> dict[str, torch.Tensor]:
    """One forward/backward: finite outputs, a non-zero gradient on every trainable parameter, none on teachers."""
    out = model(batch)
    for key, value in out.items():
        assert torch.isfinite(value).all(), key
    out["loss"].backward()
    trainable = model.trainable_parameters()
    assert trainable
    for name, param in trainable:
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    for name, param in model.teachers.named_parameters():
        assert not param.requires_grad and param.grad is None, f"teacher parameter {name} was trained"
    return out


@pytest.mark.parametrize("loss_views", LOSS_VIEWS)
@pytest.mark.parametrize("camera_encoding", CAMERA_ENCODINGS)
@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_every_objective_trains_every_parameter(objective, camera_encoding, loss_views):
    teachers = {"pixels": {"name": "pixels"}, "ema": {"name": "ema", "weight": 0.5}}
    model = build(tiny_config(objective, camera_encoding, loss_views, teachers))
    batch = make_batch(batch_size=2, num_views=4, num_context=2, size=32)

    out = assert_trains(model, batch)

    assert out["loss"].ndim == 0 and out["loss"].requires_grad
    expected = out["pixels/loss"] + 0.5 * out["ema/loss"] + out["depth_probe/loss"]
    torch.testing.assert_close(out["loss"].detach(), expected)
    for part in ("pixels/l1", "pixels/cosine", "ema/l1", "ema/cosine", "depth_probe/abs_rel"):
        assert part in out
    if objective == "psfm":  # unseen views are scored beside the two non-learned references
        for name in ("pixels", "ema"):
            for key in ("target_loss", "ref_copy_nearest", "ref_mean_context"):
                assert f"{name}/{key}" in out


def test_every_registered_teacher_has_a_case():
    assert set(TEACHERS.names()) == set(TEACHER_CASES) | NEEDS_EXTERNAL_FILES


@pytest.mark.parametrize("teacher", sorted(TEACHER_CASES))
def test_every_teacher_trains_the_student_and_stays_frozen(teacher, teacher_factory):
    model = build(tiny_config(teachers={teacher: TEACHER_CASES[teacher]}))
    frozen = {name: param.detach().clone() for name, param in model.teachers.named_parameters()}
    batch = make_batch(batch_size=2, num_views=3, num_context=2, size=32)

    out = assert_trains(model, batch)

    assert math.isfinite(out[f"{teacher}/loss"].item()) and out[f"{teacher}/loss"] > 0
    if teacher not in ("pixels", "depth"):  # the teachers without weights
        assert frozen
    for module in model.teachers[teacher].modules():
        assert not module.training, f"{type(module).__name__} of the {teacher} teacher is in training mode"
    for name, param in model.teachers.named_parameters():
        assert torch.equal(param, frozen[name]), name


def test_depth_probe_sends_no_gradient_into_the_decoder():
    model = build(tiny_config())
    batch = make_batch(batch_size=2, num_views=4, num_context=2, size=32, with_depth=True)

    def gradients(depth: torch.Tensor | None) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        model(replace(batch, depth=depth))["loss"].backward()
        return {name: param.grad for name, param in model.named_parameters() if param.grad is not None}

    with_depth, without_depth = gradients(batch.depth), gradients(None)

    probe = [name for name in with_depth if name.startswith("objective.depth_probe.")]
    assert probe and not any(name.startswith("objective.depth_probe.") for name in without_depth)
    assert set(with_depth) - set(probe) == set(without_depth)
    for name, grad in without_depth.items():  # decoder, heads and encoder: the probe changed nothing
        torch.testing.assert_close(with_depth[name], grad, rtol=0, atol=0, msg=name)


def test_psfm_refuses_unposed_scenes_and_per_view_accepts_them():
    batch = make_batch(batch_size=2, num_views=3, num_context=2, size=32)
    batch.has_pose = torch.tensor([True, False])
    batch.cam_to_world[1] = torch.eye(4)

    with pytest.raises(ValueError, match=r"scenes \['scene1'\].*objective=per_view"):
        build(tiny_config("psfm"))(batch)
    out = build(tiny_config("per_view"))(batch)
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_loss_on_target_views_needs_target_views(objective):
    batch = make_batch(batch_size=2, num_views=3, num_context=3, size=32)
    assert batch.target_index.shape[1] == 0

    out = build(tiny_config(objective, loss_views="all"))(batch)  # all views: fine, and no unseen-view metrics
    assert torch.isfinite(out["loss"]) and not any("target_loss" in key or "/ref_" in key for key in out)
    with pytest.raises(ValueError, match="loss_views=target but the batch has no target views"):
        build(tiny_config(objective, loss_views="target"))(batch)


def test_frozen_encoder_trains_only_decoder_and_heads():
    model = build(tiny_config(trainable=False))
    batch = make_batch(batch_size=2, num_views=4, num_context=2, size=32)

    assert_trains(model, batch)

    names = [name for name, _ in model.trainable_parameters()]
    assert names and all(name.startswith("objective.") for name in names)
    assert any(name.startswith("objective.decoder.") for name in names)
    for name, param in model.encoder.named_parameters():
        assert not param.requires_grad and param.grad is None, name
    assert any(name.startswith("encoder.backbone.") for name, _ in model.named_parameters())
    assert any(name.startswith("encoder.latent.") for name, _ in model.named_parameters())


def test_teacher_weights_must_name_known_teachers():
    with pytest.raises(ValueError, match=r"teacher_weights names unknown teachers \['pixel'\]"):
        OBJECTIVES.build("psfm", dim=32, teacher_dims={"pixels": 768}, teacher_weights={"pixel": 2.0})
    with pytest.raises(ValueError, match="loss_views must be one of"):
        OBJECTIVES.build("psfm", dim=32, teacher_dims={"pixels": 768}, loss_views="context")


def synthesize_targets(model: PretrainModel, batch: MultiViewBatch) -> torch.Tensor:
    """The objective's features [B, T, N, D] for ``batch``'s target views (the loss covers targets only)."""
    with torch.no_grad():
        features, index, _ = model.objective.synthesize(model.encoder, batch)
    assert torch.equal(index, batch.target_index)
    return features


def test_psfm_synthesizes_targets_from_context_images_and_target_cameras():
    """The encoder sees context views only; a target's features follow its camera, not its pixels."""
    model = build(tiny_config("psfm", loss_views="target")).eval()
    batch = make_batch(batch_size=2, num_views=4, num_context=2, size=32)

    features = synthesize_targets(model, batch)
    assert features.shape == (2, 2, 4, 32)

    target = batch.target_index[0, 0].item()
    repainted = batch.images.clone()
    repainted[0, target] = 1 - repainted[0, target]
    torch.testing.assert_close(synthesize_targets(model, replace(batch, images=repainted)), features, rtol=0, atol=0)

    context = batch.context_index[0, 1].item()
    repainted = batch.images.clone()
    repainted[0, context] = 1 - repainted[0, context]
    assert not torch.allclose(synthesize_targets(model, replace(batch, images=repainted))[0], features[0], atol=1e-4)

    moved = batch.cam_to_world.clone()
    moved[0, target, :3, 3] += torch.tensor([0.3, -0.2, 0.4])
    after = synthesize_targets(model, replace(batch, cam_to_world=moved))
    assert not torch.allclose(after[0, 0], features[0, 0], atol=1e-4), "moving the target's camera changes nothing"
    torch.testing.assert_close(after[0, 1:], features[0, 1:])  # other targets decode independently
    torch.testing.assert_close(after[1], features[1])


def test_per_view_ignores_poses():
    model = build(tiny_config("per_view")).eval()
    batch = make_batch(batch_size=2, num_views=3, num_context=2, size=32)
    moved = batch.cam_to_world.clone()
    moved[:, 1:, :3, 3] += 0.5

    with torch.no_grad():
        features, index, _ = model.objective.synthesize(model.encoder, batch)
        again, _, _ = model.objective.synthesize(model.encoder, replace(batch, cam_to_world=moved))

    assert features.shape == (2, 3, 4, 32) and torch.equal(index, torch.arange(3).expand(2, -1))
    torch.testing.assert_close(again, features, rtol=0, atol=0)


def test_per_view_on_target_views_reconstructs_each_target_from_itself_alone():
    model = build(tiny_config("per_view", loss_views="target")).eval()
    batch = make_batch(batch_size=2, num_views=4, num_context=2, size=32)

    features = synthesize_targets(model, batch)
    assert features.shape == (2, 2, 4, 32)
    context, target = batch.context_index[0, 0].item(), batch.target_index[0, 1].item()
    repainted = batch.images.clone()
    repainted[0, context] = 1 - repainted[0, context]  # a view outside the loss changes nothing
    torch.testing.assert_close(synthesize_targets(model, replace(batch, images=repainted)), features, rtol=0, atol=0)
    repainted[0, target] = 1 - repainted[0, target]  # a target changes its own features only
    after = synthesize_targets(model, replace(batch, images=repainted))
    assert not torch.allclose(after[0, 1], features[0, 1], atol=1e-4)
    torch.testing.assert_close(after[0, 0], features[0, 0])
    torch.testing.assert_close(after[1], features[1])


@pytest.mark.parametrize("camera_encoding", CAMERA_ENCODINGS)
def test_decoder_output_of_a_view_follows_its_own_pose(camera_encoding):
    torch.manual_seed(0)
    decoder = FieldDecoder(dim=32, depth=1, num_heads=2, camera_encoding=camera_encoding).eval()
    batch = make_batch(batch_size=1, num_views=3, size=32)
    latents = torch.randn(1, 4, 32)

    def decode(cam_to_world: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return decoder(latents, batch.intrinsics, cam_to_world, (2, 2), (32, 32))

    features = decode(batch.cam_to_world)
    assert features.shape == (1, 3, 4, 32)
    for change in ("rotate", "translate"):
        moved = batch.cam_to_world.clone()
        if change == "rotate":
            moved[0, 2, :3, :3] = moved[0, 2, :3, :3] @ torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0, 0, 1.0]])
        else:
            moved[0, 2, :3, 3] += torch.tensor([0.5, 0.0, -0.3])
        after = decode(moved)
        assert not torch.allclose(after[0, 2], features[0, 2], atol=1e-4), change
        torch.testing.assert_close(after[0, :2], features[0, :2])


@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_the_decoder_is_told_rows_then_columns_on_non_square_images(objective, monkeypatch):
    """32 x 64 views: the decoder gets the grid (2, 4) and the image size (32, 64), both (rows, columns).

    Square test images cannot tell (H, W) from (W, H); rays and PRoPE would silently use a mirrored size.
    """
    model = build(tiny_config(objective)).eval()
    batch = make_batch(batch_size=1, num_views=3, num_context=2, size=32, with_depth=False)
    wide = torch.tensor(intrinsics_from_fov(64, 32, 60.0), dtype=torch.float32)
    batch = replace(batch, images=torch.rand(1, 3, 3, 32, 64), intrinsics=wide.expand(1, 3, 3, 3).clone())
    told = []
    decode = model.objective.decoder.forward

    def spy(latents, intrinsics, cam_to_world, grid, image_size):
        told.append((tuple(grid), tuple(image_size)))
        return decode(latents, intrinsics, cam_to_world, grid, image_size)

    monkeypatch.setattr(model.objective.decoder, "forward", spy)
    with torch.no_grad():
        features, _, grid = model.objective.synthesize(model.encoder, batch)

    assert told == [((2, 4), (32, 64))] and tuple(grid) == (2, 4)
    assert features.shape[-2] == 8


def test_decoder_refuses_bad_settings():
    with pytest.raises(ValueError, match="camera_encoding must be one of"):
        FieldDecoder(dim=32, depth=1, num_heads=2, camera_encoding="sinusoid")
    with pytest.raises(ValueError, match=r"prope needs >= 8 channels per head, got 4"):
        FieldDecoder(dim=32, depth=1, num_heads=8, camera_encoding="prope")
    FieldDecoder(dim=32, depth=1, num_heads=8, camera_encoding="plucker")  # plain attention: any head width


def test_teachers_see_the_clean_images_when_the_views_were_colour_jittered():
    """Targets must not carry a per-view random jitter the decoder cannot know about."""
    model = build(tiny_config())
    batch = make_batch(batch_size=2, num_views=4, num_context=2)
    jittered = batch.images.pow(2.0)  # a stand-in for PhotometricAugmentation (per-patch-normalized pixels see a gamma)

    with torch.no_grad():
        clean = model(batch)
        augmented = model(replace(batch, images=jittered, clean_images=batch.images))
        unmarked = model(replace(batch, images=jittered))

    for reference in ("pixels/ref_copy_nearest", "pixels/ref_mean_context"):  # functions of the targets alone
        torch.testing.assert_close(augmented[reference], clean[reference], rtol=0, atol=0)
        assert not torch.allclose(unmarked[reference], clean[reference])
    assert not torch.allclose(augmented["pixels/loss"], clean["pixels/loss"])  # the encoder did see the jitter


class FixedTeacher:
    """A stand-in teacher whose per-view features [B, V, N, Dt] are given, whatever the images."""

    def __init__(self, features: torch.Tensor):
        self.features = features

    def batch_targets(self, batch: MultiViewBatch, grid: tuple[int, int]) -> torch.Tensor:
        return self.features


def targets_in_the_middle() -> MultiViewBatch:
    """Five views per scene with the targets *not* last, and a known nearest context view for each target.

    Scene 0: context views 0, 3, 4, targets 1 (beside view 3) and 2 (beside view 0).
    Scene 1: context views 0, 4, 1, targets 3 (beside view 1) and 2 (beside view 4), listed out of order.
    """
    batch = make_batch(batch_size=2, num_views=5, num_context=3, size=32, with_depth=False)
    batch.context_index = torch.tensor([[0, 3, 4], [0, 4, 1]])
    batch.target_index = torch.tensor([[1, 2], [3, 2]])
    spots = [
        {0: [0.0, 0.0, 0.0], 3: [5.0, 0.0, 0.0], 4: [0.0, 5.0, 0.0], 1: [4.8, 0.1, 0.0], 2: [0.1, 0.2, 0.0]},
        {0: [0.0, 0.0, 0.0], 4: [5.0, 0.0, 0.0], 1: [0.0, 5.0, 0.0], 3: [0.2, 4.9, 0.0], 2: [5.1, 0.0, 0.0]},
    ]
    batch.cam_to_world = torch.eye(4).repeat(2, 5, 1, 1)
    for scene, views in enumerate(spots):
        for view, spot in views.items():
            batch.cam_to_world[scene, view, :3, 3] = torch.tensor(spot)
    return batch


NEAREST_CONTEXT = torch.tensor([[3, 0], [1, 4]])  # per target of ``targets_in_the_middle``, an index into V


def metrics_with_predictions(loss_views: str, batch: MultiViewBatch, teacher: torch.Tensor, predicted: torch.Tensor):
    """Run ``PSFMObjective.forward`` with the features it predicts for every view V fixed to ``predicted``.

    The decoder is bypassed (``synthesize`` returns ``predicted`` on the views the loss covers) and the head
    is the identity, so the metrics are checked against exactly known predictions.
    """
    dim = teacher.shape[-1]
    objective = PSFMObjective(
        dim, {"t": dim}, {"depth": 1, "num_heads": 1}, loss_views, target_norm="none", depth_probe=False
    )
    objective.heads["t"] = nn.Identity()

    def synthesize(encoder, batch):
        index = objective.loss_index(batch)
        return batch.gather_views(index, predicted), index, (2, 2)

    objective.synthesize = synthesize
    with torch.no_grad():
        return objective(None, batch, {"t": FixedTeacher(teacher)})


@pytest.mark.parametrize("loss_views", LOSS_VIEWS)
def test_target_loss_scores_the_target_views_wherever_they_sit(loss_views):
    """Predictions equal to the teacher on the target views (and garbage on context views) score a perfect 0.

    The batch's targets are views 1, 2 and 3, 2: neither the last views nor in order, so a metric that took the
    last T predictions, gathered the context views, or gathered twice when the loss covers targets only, fails.
    """
    batch = targets_in_the_middle()
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 5, 4, 8, generator=generator)
    garbage = 5 * torch.randn(2, 5, 4, 8, generator=generator) - 3
    on_targets = torch.zeros(2, 5, 1, 1, dtype=torch.bool)
    on_targets.scatter_(1, batch.target_index[..., None, None], True)

    out = metrics_with_predictions(loss_views, batch, teacher, torch.where(on_targets, teacher, garbage))
    assert out["t/target_loss"] < 1e-6  # a perfect prediction: smooth-L1 0, cosine distance 0
    if loss_views == "all":
        assert out["t/loss"] > 0.5  # the garbage is there, on the context views
    corrupted = metrics_with_predictions(loss_views, batch, teacher, torch.where(on_targets, teacher, -garbage))
    assert torch.equal(corrupted["t/target_loss"], out["t/target_loss"])

    # the converse: right on the context views, wrong on the targets -> exactly the loss of the wrong targets
    wrong = metrics_with_predictions(loss_views, batch, teacher, torch.where(on_targets, garbage, teacher))
    pick = [[1, 2], [3, 2]]  # by hand, not through the batch's own indexing
    expected = feature_loss(
        torch.stack([garbage[b, pick[b]] for b in range(2)]), torch.stack([teacher[b, pick[b]] for b in range(2)])
    )[0]
    torch.testing.assert_close(wrong["t/target_loss"], expected)


@pytest.mark.parametrize("loss_views", LOSS_VIEWS)
def test_reference_metrics_read_the_teacher_on_the_right_views(loss_views):
    """``ref_copy_nearest`` and ``ref_mean_context`` score the teacher's own context views against its targets.

    They must not depend on the model's predictions at all, and must match a by-hand computation on the
    views picked by hand (nearest context view per target; mean of the three context views).
    """
    batch = targets_in_the_middle()
    generator = torch.Generator().manual_seed(1)
    teacher = torch.randn(2, 5, 4, 8, generator=generator)
    out = metrics_with_predictions(loss_views, batch, teacher, torch.randn(2, 5, 4, 8, generator=generator))
    again = metrics_with_predictions(loss_views, batch, teacher, torch.randn(2, 5, 4, 8, generator=generator))

    truth = torch.stack([teacher[0, [1, 2]], teacher[1, [3, 2]]])
    copied = torch.stack([teacher[b, NEAREST_CONTEXT[b]] for b in range(2)])
    mean = torch.stack([teacher[0, [0, 3, 4]].mean(0), teacher[1, [0, 4, 1]].mean(0)])[:, None].expand(-1, 2, -1, -1)
    torch.testing.assert_close(out["t/ref_copy_nearest"], feature_loss(copied, truth)[0])
    torch.testing.assert_close(out["t/ref_mean_context"], feature_loss(mean, truth)[0])
    for key in ("t/ref_copy_nearest", "t/ref_mean_context"):
        assert torch.equal(again[key], out[key])


class FixedLogDepth(nn.Module):
    """A depth probe whose output is given: log depth [B, K, N] for the views the loss covers."""

    def __init__(self, log_depth: torch.Tensor):
        super().__init__()
        self.log_depth = log_depth

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.log_depth


@pytest.mark.parametrize("loss_views", LOSS_VIEWS)
def test_target_depth_metrics_score_only_unseen_views_beside_the_references(loss_views):
    """``depth_probe/target_abs_rel`` is the probe's AbsRel on the target views alone; the references' by hand.

    Every view has one depth everywhere (1 + scene + view metres), so patch depth is known exactly; the probe is
    right on the target views and 3x off on the context views, which must not show in the target metric.
    """
    batch = targets_in_the_middle()
    views = torch.arange(5.0)
    per_view = torch.stack([1 + views, 2 + views])  # B V metres
    batch.depth = per_view[..., None, None, None].expand(-1, -1, 1, 32, 32).clone()
    on_targets = torch.zeros(2, 5, dtype=torch.bool)
    on_targets.scatter_(1, batch.target_index, True)
    probed = torch.where(on_targets, per_view, 3 * per_view).log()[..., None].expand(-1, -1, 4)  # B V N

    dim = 8
    objective = PSFMObjective(dim, {"t": dim}, {"depth": 1, "num_heads": 1}, loss_views, target_norm="none")
    index = objective.loss_index(batch)
    objective.depth_probe = FixedLogDepth(batch.gather_views(index, probed))
    objective.synthesize = lambda encoder, batch: (torch.zeros(2, index.shape[1], 4, dim), index, (2, 2))
    with torch.no_grad():
        out = objective(None, batch, {"t": FixedTeacher(torch.zeros(2, 5, 4, dim))})

    assert out["depth_probe/target_abs_rel"] < 1e-6
    if loss_views == "all":
        assert out["depth_probe/abs_rel"] > 0.5  # the context views' 3x errors are in the mixed metric
    truth = torch.stack([per_view[0, [1, 2]], per_view[1, [3, 2]]])
    nearest = torch.stack([per_view[b, NEAREST_CONTEXT[b]] for b in range(2)])
    mean = torch.stack([per_view[0, [0, 3, 4]].mean(), per_view[1, [0, 4, 1]].mean()])[:, None]
    torch.testing.assert_close(out["depth_probe/ref_copy_nearest"], ((nearest - truth).abs() / truth).mean())
    torch.testing.assert_close(out["depth_probe/ref_mean_context"], ((mean - truth).abs() / truth).mean())
    for name in ("target_abs_rel", "ref_copy_nearest", "ref_mean_context"):  # one depth per view: exact shapes
        assert out[f"depth_probe/{name}_aligned"] < 1e-6

    # twice too deep on every target: AbsRel 1, but the shape is right, so the scale-aligned AbsRel stays 0
    objective.depth_probe = FixedLogDepth(batch.gather_views(index, (2 * per_view).log()[..., None].expand(-1, -1, 4)))
    with torch.no_grad():
        doubled = objective(None, batch, {"t": FixedTeacher(torch.zeros(2, 5, 4, dim))})
    torch.testing.assert_close(doubled["depth_probe/target_abs_rel"], torch.tensor(1.0))
    assert doubled["depth_probe/target_abs_rel_aligned"] < 1e-6


def test_depth_as_image_orders_depths_and_marks_unknown():
    """Channels in [0, 1]; the first grows with depth over [0.2, 20] m; unknown depth (0) is black."""
    depth = torch.tensor([0.0, 0.1, 0.2, 1.0, 5.0, 20.0, 50.0]).view(1, 1, 1, 7)
    image = depth_as_image(depth)
    assert image.shape == (1, 3, 1, 7)
    assert image.min() >= 0 and image.max() <= 1
    spread = image[0, 0, 0]
    assert torch.equal(image[..., 0], torch.zeros(1, 3, 1))
    assert spread[1] == spread[2] == 0 and spread[5] == spread[6] == 1  # clamped at the ends
    assert (spread[3:6].diff() > 0).all()


def test_the_depth_context_ablation_encodes_true_depth_not_the_photos():
    """``context_input=depth``: the decoded field follows the context views' depth and ignores their pixels."""
    config = tiny_config(teachers={"depth": {"name": "depth"}})
    config = replace(config, objective=replace(config.objective, context_input="depth"))
    model = build(config).eval()
    batch = make_batch()
    with torch.no_grad():
        base, _, _ = model.objective.synthesize(model.encoder, batch)
        repaint = replace(batch, images=torch.rand_like(batch.images))
        repainted, _, _ = model.objective.synthesize(model.encoder, repaint)
        deeper, _, _ = model.objective.synthesize(model.encoder, replace(batch, depth=2 * batch.depth))
    torch.testing.assert_close(repainted, base)
    assert not torch.allclose(deeper, base, atol=1e-4)
    assert_trains(build(config), batch)
    with pytest.raises(ValueError, match="load_depth"):
        model(replace(batch, depth=None))
    with pytest.raises(ValueError, match="context_input"):
        PSFMObjective(8, {"t": 8}, context_input="normals")


@pytest.mark.parametrize(("camera_encoding", "camera_dims", "rope_dims"), [("prope", 8, 8), ("plucker", 0, 16)])
def test_decoder_heads_split_between_prope_and_rope_only_under_prope(camera_encoding, camera_dims, rope_dims):
    """16-channel heads: PRoPE takes the leading half and RoPE the rest; with Plücker rays in the tokens RoPE
    rotates the whole head (mutation testing: 1 camera channel under Plücker, leaving RoPE 12, survived)."""
    decoder = FieldDecoder(dim=64, depth=1, num_heads=4, camera_encoding=camera_encoding)
    assert (decoder.camera_dims, decoder.rope.dims) == (camera_dims, rope_dims)


def test_the_decoder_defaults_match_the_configs_where_they_mean_the_same():
    """Code that builds a ``FieldDecoder`` by hand gets the block a config run gets (depth and heads differ on
    purpose: the class takes Spa3R's sizes, the config this box's). (mutation testing: ``mlp_ratio`` 5 survived.)"""
    import inspect

    from psfm.training.config import DecoderConfig

    defaults = inspect.signature(FieldDecoder).parameters
    for name in ("camera_encoding", "mlp_ratio", "qk_norm", "rope_base"):
        assert defaults[name].default == getattr(DecoderConfig(), name), name
    assert (defaults["depth"].default, defaults["num_heads"].default) == (6, 12)
