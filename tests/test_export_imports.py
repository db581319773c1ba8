"""``psfm.load`` in a VLM process: torch, timm and safetensors only, none of the trainer's packages.

Each check runs in a fresh interpreter, since this test process has long imported Lightning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from psfm.export import export_encoder
from psfm.training.config import BackboneConfig, EncoderConfig
from psfm.training.model import build_encoder

REPO = Path(__file__).resolve().parents[1]
TRAINER_PACKAGES = ("lightning", "pytorch_lightning", "wandb", "webdataset", "hydra", "omegaconf", "kornia")
TRAINER_MODULES = ("lightning.pytorch", "psfm.training", "psfm.datamodules", "psfm.teachers", "psfm.objectives")
ENCODER = EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1)
FACTORY_MODULE = "psfm_test_tiny_backbone"
FACTORY_SOURCE = '''
"""A user's own backbone for the ``module`` backbone: one strided convolution, patch 8."""
from torch import nn


class TinyBackbone(nn.Module):
    dim = 16
    patch_size = 8

    def __init__(self):
        super().__init__()
        self.patchify = nn.Conv2d(3, self.dim, self.patch_size, self.patch_size)

    def forward(self, images):
        return self.patchify(images).flatten(2).transpose(1, 2)


def build():
    return TinyBackbone()
'''


def _backbone(kind: str, folder: Path) -> BackboneConfig:
    if kind == "vit_test":
        return BackboneConfig(name="vit_test", img_size=32, overrides={"depth": 1, "embed_dim": 32})
    (folder / f"{FACTORY_MODULE}.py").write_text(FACTORY_SOURCE)
    return BackboneConfig(name="module", frozen=True, overrides={"factory": f"{FACTORY_MODULE}:build"})


@pytest.fixture(params=["vit_test", "module"])
def export(request, tmp_path, monkeypatch):
    """A tiny export (folder, factory folder, images, the latents the exported encoder gives them)."""
    factories = tmp_path / "factories"
    factories.mkdir()
    monkeypatch.syspath_prepend(str(factories))
    backbone = _backbone(request.param, factories)
    torch.manual_seed(0)
    encoder = build_encoder(backbone, ENCODER).eval()
    export_encoder(encoder, backbone, ENCODER, (32, 32), tmp_path / "export")
    images = torch.rand(1, 2, 3, 32, 32)
    torch.save(images, tmp_path / "images.pt")
    with torch.no_grad():
        latents = encoder(images).latents
    return tmp_path / "export", factories, tmp_path / "images.pt", latents


def _run_fresh(code: str, factories: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(factories)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def test_load_imports_no_trainer_package(export):
    """What ``psfm.load`` adds to ``sys.modules`` beyond torch, timm and safetensors themselves.

    timm imports wandb on its own when wandb is installed (``timm/utils/summary.py``), so the check
    is on what psfm brings in; ``test_load_works_where_only_torch_timm_safetensors_exist`` shows
    psfm does not need wandb at all.
    """
    folder, factories, _, _ = export
    code = f"""
        import json, sys
        import safetensors.torch, timm, torch
        before = set(sys.modules)
        import psfm
        psfm.load({str(folder)!r})
        watched = {list(TRAINER_PACKAGES + TRAINER_MODULES)!r}
        added = sorted(
            name for name in set(sys.modules) - before if any(name == w or name.startswith(w + ".") for w in watched)
        )
        print(json.dumps(added))
    """
    done = _run_fresh(code, factories)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_load_works_where_only_torch_timm_safetensors_exist(export, tmp_path):
    """The trainer's packages made unimportable (as in a VLM environment without them): load and encode."""
    folder, factories, images, latents = export
    code = f"""
        import sys
        for name in {list(TRAINER_PACKAGES)!r}:
            sys.modules[name] = None  # import raises ImportError, as if not installed
        import torch
        import psfm
        encoder = psfm.load({str(folder)!r})
        torch.save(encoder(torch.load({str(images)!r})), {str(tmp_path / "latents.pt")!r})
    """
    done = _run_fresh(code, factories)
    assert done.returncode == 0, done.stderr
    torch.testing.assert_close(torch.load(tmp_path / "latents.pt"), latents)
