"""``PretrainModule`` hooks: gradient clipping (called directly), EMA-teacher updates (a tiny Trainer run)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from psfm.teachers.ema import EMATeacher
from psfm.training.config import OptimConfig, TeacherConfig
from psfm.training.module import PretrainModule
from psfm.types import MultiViewBatch
from tests.conftest import make_batch
from tests.training.conftest import tiny_command


def test_depth_probe_gradients_are_clipped_apart_from_the_model(tmp_path):
    command = tiny_command(tmp_path / "world", tmp_path / "run")
    module = PretrainModule(asdict(command.model), asdict(command.optim), total_steps=10)
    groups = module.model.clip_groups()
    assert set(groups) == {"model", "depth_probe"}
    probe_ids = {id(p) for p in module.model.objective.depth_probe.parameters()}
    assert {id(p) for p in groups["depth_probe"]} == probe_ids
    assert not probe_ids & {id(p) for p in groups["model"]}

    torch.manual_seed(0)
    for params, scale in ((groups["model"], 1e-3), (groups["depth_probe"], 10.0)):
        for param in params:
            param.grad = scale * torch.randn_like(param)
    model_grads = [param.grad.clone() for param in groups["model"]]

    module.configure_gradient_clipping(optimizer=None, gradient_clip_val=1.0)

    for before, param in zip(model_grads, groups["model"], strict=True):  # small model norm: untouched
        torch.testing.assert_close(param.grad, before, rtol=0, atol=0)
    probe_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in groups["depth_probe"]]))
    torch.testing.assert_close(probe_norm, torch.tensor(1.0), rtol=1e-5, atol=0)


class Batches:
    """A fixed list of batches as a train loader (Lightning would read a plain list as several loaders)."""

    def __init__(self, batches: list[MultiViewBatch]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def ema_module(batches: int, accumulate: int, ema: TeacherConfig | None = None) -> PretrainModule:
    """The tiny model with a pixels + EMA teacher, sized for ``batches`` micro-batches."""
    command = tiny_command(Path("unused"), Path("unused"))
    ema = ema or TeacherConfig("ema")
    model = replace(command.model, teachers={"pixels": TeacherConfig("pixels"), "ema": ema})
    total_steps = batches // accumulate
    return PretrainModule(asdict(model), asdict(command.optim), total_steps=total_steps, max_nan_steps=batches)


def fit(module: PretrainModule, batches: list[MultiViewBatch], accumulate: int, callbacks=()) -> None:
    """A real Lightning fit of ``module`` over ``batches`` (no logger, no checkpoints)."""
    max_steps = len(batches) // accumulate
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        accumulate_grad_batches=accumulate,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )
    trainer.fit(module, train_dataloaders=Batches(batches))
    assert trainer.global_step == max_steps


def ema_updates(monkeypatch, batches: list[MultiViewBatch], accumulate: int) -> list[int]:
    """Train the tiny model with a pixels + EMA teacher on ``batches``; the steps at which the EMA teacher updated."""
    steps: list[int] = []
    update = EMATeacher.update

    def counting_update(self, student, step):
        steps.append(step)
        return update(self, student, step)

    monkeypatch.setattr(EMATeacher, "update", counting_update)
    fit(ema_module(len(batches), accumulate), batches, accumulate)
    return steps


def test_ema_teacher_updates_once_per_optimizer_step_under_accumulation(monkeypatch):
    batches = [make_batch(batch_size=1, num_views=3, num_context=2, seed=seed) for seed in range(6)]

    steps = ema_updates(monkeypatch, batches, accumulate=2)

    assert steps == [1, 2, 3]  # 6 micro-batches, 3 optimizer steps: one update after each


def test_ema_teacher_skips_steps_whose_loss_was_not_finite(monkeypatch):
    batches = [make_batch(batch_size=1, num_views=3, num_context=2, seed=seed) for seed in range(4)]
    batches[1].images[:] = float("nan")  # the pixels teacher and the student both give NaN: the step is skipped

    steps = ema_updates(monkeypatch, batches, accumulate=1)

    assert steps == [1, 3, 4]  # every optimizer step but the skipped second one


def test_ema_teacher_weights_follow_the_student_through_a_real_fit():
    """The counting tests above replace ``EMATeacher.update``: they pass even if the calls move nothing.

    Here nothing is patched. After each optimizer step the teacher must be m_t * teacher + (1 - m_t) * student,
    with m_t on the cosine schedule spanning *this run's* steps (momentum 0.5 -> 0.9 over 4 steps).
    """
    batches = [make_batch(batch_size=1, num_views=3, num_context=2, seed=seed) for seed in range(4)]
    ema = TeacherConfig("ema", options={"momentum": 0.5, "final_momentum": 0.9})
    module = ema_module(len(batches), accumulate=1, ema=ema)
    teacher, student = module.model.teachers["ema"].model, module.model.encoder.backbone
    start = {name: value.detach().clone() for name, value in teacher.named_parameters()}
    expected = dict(start)

    class ReplayEMA(L.Callback):
        # Lightning runs the callbacks' on_train_batch_end before the module's: the optimizer has stepped, the
        # teacher has not followed yet, so this sees exactly the student weights the teacher must average in
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            momentum = 0.9 - (0.9 - 0.5) * (1 + math.cos(math.pi * trainer.global_step / 4)) / 2
            for name, value in student.named_parameters():
                expected[name] = momentum * expected[name] + (1 - momentum) * value.detach()

    fit(module, batches, accumulate=1, callbacks=[ReplayEMA()])

    final_student = dict(student.named_parameters())
    moved = [name for name, value in teacher.named_parameters() if not torch.equal(value, start[name])]
    assert len(moved) > 10, "the teacher never moved during the fit"
    for name, value in teacher.named_parameters():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6, msg=name)

    def distance(weights: dict[str, torch.Tensor]) -> float:
        return sum((weights[name] - final_student[name].detach()).norm().item() ** 2 for name in weights) ** 0.5

    assert distance(dict(teacher.named_parameters())) < distance(start)  # towards the student, not away


def test_global_clip_mode_clips_one_norm_over_every_parameter(tmp_path):
    command = tiny_command(tmp_path / "world", tmp_path / "run")
    optim = replace(command.optim, grad_clip_mode="global")
    module = PretrainModule(asdict(command.model), asdict(optim), total_steps=10)
    groups = module.model.clip_groups()
    torch.manual_seed(0)
    for params, scale in ((groups["model"], 1e-3), (groups["depth_probe"], 10.0)):
        for param in params:
            param.grad = scale * torch.randn_like(param)
    model_grads = [param.grad.clone() for param in groups["model"]]

    module.configure_gradient_clipping(optimizer=None, gradient_clip_val=1.0)

    every = [param for params in groups.values() for param in params]
    total = torch.linalg.vector_norm(torch.stack([param.grad.norm() for param in every]))
    torch.testing.assert_close(total, torch.tensor(1.0), rtol=1e-5, atol=0)
    ratios = [param.grad.norm() / before.norm() for before, param in zip(model_grads, groups["model"], strict=True)]
    assert max(ratios) < 0.5, "the probe's large norm scales the model's gradients down too (one shared norm)"


def test_unknown_clip_mode_is_refused():
    with pytest.raises(ValueError, match="grad_clip_mode"):
        OptimConfig(grad_clip_mode="per_param")


def test_a_skipped_non_finite_step_names_the_scenes_of_its_batch(caplog):
    """One scene with NaN images skips a step; the warning must say which scene, not just count the step."""
    batches = [make_batch(batch_size=2, num_views=3, num_context=2, seed=seed) for seed in range(3)]
    batches[1].scene_keys = ["world_train_s0_0000101", "world_train_s0_0000102"]
    batches[1].images[0] = float("nan")
    module = ema_module(len(batches), accumulate=1)
    with caplog.at_level("WARNING", logger="psfm.pretrain"):
        fit(module, batches, accumulate=1)
    assert module.nan_steps == 1
    (line,) = [record.getMessage() for record in caplog.records if "non-finite" in record.getMessage()]
    assert "world_train_s0_0000101" in line and "world_train_s0_0000102" in line and "step 1" in line


@pytest.mark.parametrize(("world_size", "rank", "expected"), [(2, 1, "rank1"), (2, 0, "rank0"), (3, 2, "saved")])
def test_each_rank_resumes_its_own_rng_state_and_another_world_size_rank_zeros(world_size, rank, expected):
    """Ranks jitter their own views, so each restores its own RNG; with another world size (the per-rank
    list does not fit) every rank takes the saved rank-0 state (mutation testing: the per-rank choice survived)."""
    states = {}
    for seed, name in enumerate(("saved", "rank0", "rank1")):
        torch.manual_seed(seed)
        states[name] = {"torch": torch.get_rng_state(), "python": [7] * 624 + [seed], "cuda": []}
    module = ema_module(batches=1, accumulate=1)
    module._trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
    before = torch.get_rng_state(), random.getstate()
    try:
        module.on_load_checkpoint(
            {"rng": states["saved"], "rng_per_rank": [states["rank0"], states["rank1"]], "nan_steps": 3}
        )
        assert torch.equal(torch.get_rng_state(), states[expected]["torch"])
        assert random.getstate()[1] == tuple(states[expected]["python"])
    finally:
        torch.set_rng_state(before[0])
        random.setstate(before[1])
    assert module.nan_steps == 3


def test_a_cpu_checkpoint_resumed_on_a_cuda_machine_leaves_the_cuda_generators_alone(monkeypatch):
    """A checkpoint saved without CUDA holds no CUDA generator states; restoring that empty list would fail
    (mutation testing: `and` -> `or` before ``set_rng_state_all`` survived on this CPU-only box)."""
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    module = ema_module(batches=1, accumulate=1)
    before = torch.get_rng_state(), random.getstate()
    try:
        module.on_load_checkpoint({"rng": {"torch": before[0], "python": list(before[1][1]), "cuda": []}})
        assert restored == []
        module.on_load_checkpoint({"rng": {"torch": before[0], "python": list(before[1][1]), "cuda": ["state"]}})
        assert restored == [["state"]]
        module.nan_steps = 4
        module.on_load_checkpoint({})  # a checkpoint without the NaN count (older psfm) starts it at 0
        assert module.nan_steps == 0
    finally:
        torch.set_rng_state(before[0])
        random.setstate(before[1])
