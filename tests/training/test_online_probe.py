"""Online probing during pretraining: logged every N steps, and invisible to the training itself."""

from __future__ import annotations

import math
from dataclasses import replace

from safetensors.torch import load_file

from psfm.probes.online import OnlineProbeConfig
from psfm.training.train import train
from tests.training.conftest import tiny_command


def test_online_probe_logs_its_metrics_and_leaves_training_unchanged(tiny_world, tmp_path):
    plain = tiny_command(tiny_world, tmp_path / "plain")
    probed = replace(
        tiny_command(tiny_world, tmp_path / "probed"),
        online_probe=OnlineProbeConfig(every_steps=3, train_scenes=12, val_scenes=6, context_views=2, probe_views=4),
    )
    metrics = train(probed)
    for name in ("retrieval_top1", "retrieval_shared_reference_top1", "retrieval_moved_reference_top1"):
        assert 0.0 <= metrics[f"probe/{name}"] <= 1.0, name
    assert math.isfinite(metrics["probe/floor_area_mae_ratio"]) and metrics["probe/floor_area_mae_ratio"] > 0
    header = (tmp_path / "probed" / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "probe/retrieval_top1" in header

    train(plain)
    weights = load_file(tmp_path / "plain" / "export" / "encoder.safetensors")
    probed_weights = load_file(tmp_path / "probed" / "export" / "encoder.safetensors")
    assert weights.keys() == probed_weights.keys()
    for name, value in weights.items():  # eval mode, no grad, own data: the run is bit-identical
        assert (value == probed_weights[name]).all(), name
