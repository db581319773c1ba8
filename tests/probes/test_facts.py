"""Scene-fact probes: read a fact the scene tokens hold, and only the train mean from constant tokens."""

from __future__ import annotations

import pytest
import torch

from psfm.probes.facts import attentive, pooled, pooled_linear
from psfm.probes.sources import ProbeFeatures
from psfm.probes.targets import SceneFact


def fact(values: torch.Tensor, name: str = "floor_area", unit: str = "m²") -> SceneFact:
    return SceneFact(name, values[:, None] if values.dim() == 1 else values, unit, [name])


def features(tokens: torch.Tensor) -> ProbeFeatures:
    return ProbeFeatures(tokens, tokens.clone(), torch.zeros(len(tokens), 2, 4, 1), (2, 2), True, False)


def test_pooled_is_mean_and_std_over_tokens():
    tokens = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]])
    assert pooled(tokens)[0].tolist() == pytest.approx([2.0, 1.0, 2**0.5, 2**0.5])
    assert pooled(tokens[:, :1]).tolist() == [[1.0, 0.0, 0.0, 0.0]]  # one token: no spread


def test_pooled_linear_reads_a_linear_fact_and_floors_at_the_train_mean():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(120, 4, 8, generator=generator)
    area = 20 + 3 * tokens.mean(1)[:, 0] - 2 * tokens.mean(1)[:, 3]
    learned = pooled_linear(features(tokens[:80]), features(tokens[80:]), fact(area[:80]), fact(area[80:]))
    assert learned.probe == "floor_area/linear" and learned.metric == "MAE (m²)"
    assert learned.mean < 0.02 and learned.ci[0] <= learned.mean <= learned.ci[1]
    constant = torch.zeros(120, 1, 1)
    floor = pooled_linear(features(constant[:80]), features(constant[80:]), fact(area[:80]), fact(area[80:]))
    assert floor.mean == pytest.approx((area[80:] - area[:80].mean()).abs().mean().item(), rel=1e-4)


def test_attentive_reads_every_fact_at_its_own_scale():
    """Token 0 holds two facts of very different scales (standardized, with anchors for LayerNorm)."""
    generator = torch.Generator().manual_seed(0)
    count = 400
    area, objects = (
        10 + 30 * torch.rand(count, generator=generator),
        torch.randint(0, 9, (count, 2), generator=generator),
    )
    tokens = torch.randn(count, 4, 8, generator=generator)
    tokens[:, 0] = 0.0
    tokens[:, 0, 0], tokens[:, 0, 1] = (area - 25) / 9, (objects[:, 0] - 4) / 2.6
    tokens[:, 0, 2] = (objects[:, 1] - 4) / 2.6
    tokens[:, 0, 3], tokens[:, 0, 4] = 3.0, -3.0
    facts = [fact(area), SceneFact("object_count", objects.float(), "objects", ["chair", "total"])]
    split = [
        [f.__class__(f.name, f.values[part], f.unit, f.columns) for f in facts]
        for part in (slice(0, 320), slice(320, None))
    ]
    scores = attentive(features(tokens[:320]), features(tokens[320:]), split[0], split[1], seeds=[0], steps=200)
    assert [s.probe for s in scores] == ["floor_area/attentive", "object_count/attentive"]
    assert [s.metric for s in scores] == ["MAE (m²)", "MAE (objects)"]
    assert scores[0].extra["predicted"].shape == (80, 1) and scores[1].extra["predicted"].shape == (80, 2)
    assert scores[0].mean < 0.1 * (area[320:] - area[:320].mean()).abs().mean().item()
    assert scores[1].mean < 0.2 * (objects[320:] - objects[:320].float().mean(0)).abs().mean().item()
