"""View invariance: two subsets of a scene must find each other; unrelated subsets score chance."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from psfm.probes.retrieval import similarity, top_k, view_invariance
from psfm.probes.sources import ProbeFeatures, reference_subsets


def features(first: torch.Tensor, second: torch.Tensor, ordered: bool) -> ProbeFeatures:
    count = len(first)
    return ProbeFeatures(first, second, torch.zeros(count, 2, 4, 1), (2, 2), ordered, not ordered)


def score(scores, metric: str) -> float:
    return next(s for s in scores if s.metric == metric).mean


@pytest.mark.parametrize("ordered", [True, False])
def test_a_slightly_perturbed_subset_is_always_retrieved(ordered):
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(64, 4, 16, generator=generator)
    second = first + 0.05 * torch.randn(first.shape, generator=generator)
    scores = view_invariance(features(first, second, ordered))
    assert score(scores, "top-1") == 1.0 and score(scores, "top-5") == 1.0
    assert score(scores, "cosine gap") > 0.9


@pytest.mark.parametrize("ordered", [True, False])
def test_independent_subsets_score_chance(ordered):
    top1, top5 = [], []
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        first, second = torch.randn(2, 64, 4, 16, generator=generator)
        scores = view_invariance(features(first, second, ordered))
        top1.append(score(scores, "top-1"))
        top5.append(score(scores, "top-5"))
        assert abs(score(scores, "cosine gap")) < 0.1
    assert sum(top1) / len(top1) <= 3 / 64
    assert sum(top5) / len(top5) <= 3 * 5 / 64


def test_top_k_breaks_ties_fairly():
    assert top_k(torch.ones(64, 64), 1) == pytest.approx(1 / 64)
    assert top_k(torch.ones(64, 64), 5) == pytest.approx(5 / 64)
    assert top_k(torch.zeros(10, 10), 10) == 1.0
    second_best = torch.tensor([[0.5, 0.9, 0.1], [0.2, 0.5, 0.9], [0.9, 0.1, 0.5]])  # own column ranks 2nd
    assert top_k(second_best, 1) == 0.0 and top_k(second_best, 2) == 1.0
    tied_at_top = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])  # rows: 1/2, 1, 1/2
    assert top_k(tied_at_top, 1) == pytest.approx((0.5 + 1.0 + 0.5) / 3)


def shuffled_sets(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every scene holds the same 6 tokens, each in its own order; subset B = subset A + tiny noise."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(6, 16, generator=generator)
    orders = random.Random(seed).sample(list(itertools.permutations(range(6))), count)
    first = torch.stack([shared[list(order)] for order in orders])
    return first, first + 1e-3 * torch.randn(first.shape, generator=generator)


def test_ordered_descriptors_compare_token_by_token():
    """Scenes that differ only in which token sits where: ordered tokens tell them apart, a mean cannot."""
    first, second = shuffled_sets(32, seed=0)
    assert score(view_invariance(features(first, second, ordered=True)), "top-1") == 1.0
    assert score(view_invariance(features(first, second, ordered=False)), "top-1") <= 4 / 32


def test_unordered_descriptors_ignore_token_order():
    """Subset B holds subset A's tokens rolled by one: the same set (mean pooling), different slots."""
    generator = torch.Generator().manual_seed(1)
    first = torch.randn(32, 6, 16, generator=generator)
    second = first.roll(1, dims=1)
    assert score(view_invariance(features(first, second, ordered=False)), "top-1") == 1.0
    assert score(view_invariance(features(first, second, ordered=True)), "top-1") <= 4 / 32


def test_a_component_every_scene_shares_is_centred_away():
    """Learned latent queries add the same vector to every scene; cosine must not be dominated by it."""
    generator = torch.Generator().manual_seed(2)
    first = torch.randn(32, 4, 16, generator=generator)
    second = first + 0.5 * torch.randn(first.shape, generator=generator)
    shared = 100 * torch.randn(4, 16, generator=generator)
    plain, offset = (
        similarity(features(first, second, True)),
        similarity(features(first + shared, second + shared, True)),
    )
    assert torch.allclose(plain, offset, atol=1e-4)
    assert score(view_invariance(features(first + shared, second + shared, True)), "cosine gap") > 0.5


def frame_features(frame_bound: bool, count: int = 32, context: int = 3) -> ProbeFeatures:
    """Each subset's tokens: the scene's code, plus (frame-bound) a far larger code of its reference view."""
    generator = torch.Generator().manual_seed(3)
    scene = torch.randn(count, 1, 4, 16, generator=generator)
    views = 5 * torch.randn(count, 2 * context, 4, 16, generator=generator) if frame_bound else torch.zeros(1)

    def subset(positions: list[int]) -> torch.Tensor:
        noise = 0.1 * torch.randn(count, 4, 16, generator=generator)
        reference = views[:, positions[0]] if frame_bound else 0
        return scene[:, 0] + reference + noise

    subsets = reference_subsets(context)
    return ProbeFeatures(
        subset(list(range(context))),
        subset(list(range(context, 2 * context))),
        torch.zeros(count, context, 4, 1),
        (2, 2),
        True,
        False,
        subset(subsets["shared"]),
        subset(subsets["moved"]),
    )


def test_frame_aware_variants_tell_a_scene_in_its_reference_frame_from_a_frame_free_one():
    """Tokens dominated by the reference view: retrieved only when the reference is shared; frame-free: always."""
    bound = view_invariance(frame_features(frame_bound=True))
    top1 = {s.probe: s.mean for s in bound if s.metric == "top-1"}
    assert top1["view_invariance/shared_reference"] == 1.0
    assert top1["view_invariance/retrieval"] <= 4 / 32 and top1["view_invariance/moved_reference"] <= 4 / 32
    free = view_invariance(frame_features(frame_bound=False))
    assert all(s.mean == 1.0 for s in free if s.metric == "top-1")


def test_reference_subsets_keep_or_move_the_reference_view():
    assert reference_subsets(3) == {"shared": [0, 4, 5], "moved": [1, 2, 0]}
    assert reference_subsets(2) == {"shared": [0, 3], "moved": [1, 0]}
    assert reference_subsets(1) == {}
    only_b = view_invariance(
        ProbeFeatures(torch.randn(8, 1, 4), torch.randn(8, 1, 4), torch.zeros(8, 1, 4, 1), (2, 2), True, False)
    )
    assert {s.probe for s in only_b} == {"view_invariance/retrieval"}
