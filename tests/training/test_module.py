"""``PretrainModule`` hooks that are cheaper to check without a Trainer."""

from __future__ import annotations

from dataclasses import asdict

import torch

from psfm.training.module import PretrainModule
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
