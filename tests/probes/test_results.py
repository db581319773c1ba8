"""Probe scores: mean, spread over seeds, the bootstrap interval, and how they are written."""

from __future__ import annotations

import pytest
import torch

from psfm.probes.results import ProbeScore, bootstrap_ci


def test_score_text_and_json():
    seeds = ProbeScore("facts/attentive", "MAE (m)", [1.0, 2.0, 3.0])
    assert seeds.mean == 2.0 and seeds.spread == 1.0 and seeds.text() == "2.000 ± 1.000"
    closed = ProbeScore("facts/linear", "MAE (m)", [0.5], ci=(0.25, 0.75))
    assert closed.spread == 0.0 and closed.text() == "0.500 [0.250, 0.750]"
    assert ProbeScore("x", "top-1", [0.125], lower_is_better=False).text() == "0.125"
    record = closed.to_json()
    assert record == {
        "probe": "facts/linear",
        "metric": "MAE (m)",
        "mean": 0.5,
        "std_over_seeds": 0.0,
        "values": [0.5],
        "ci95": [0.25, 0.75],
        "lower_is_better": True,
    }


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    values = torch.randn(200, generator=torch.Generator().manual_seed(0))
    low, high = bootstrap_ci(values)
    assert low < values.mean().item() < high and high - low == pytest.approx(
        2 * 1.96 * values.std().item() / 200**0.5, rel=0.2
    )
    assert bootstrap_ci(values) == (low, high)
    assert bootstrap_ci(torch.full((10,), 3.0)) == pytest.approx((3.0, 3.0))
