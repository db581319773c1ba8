"""View invariance: the scene tokens of two disjoint view subsets of a scene must find each other.

Each held-out scene is encoded twice, from views 0..C-1 and from views C..2C-1 (no view shared).
Descriptors are the tokens flattened (ordered sources: latent i means the same in every scene) or
mean-pooled (per-view sources), centred on the gallery mean (so a component every scene shares,
such as the learned latent queries, does not dominate the cosine) and L2-normalized. Subset A
retrieves among the N subsets B and vice versa; no training, nothing to fit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from psfm.probes.results import ProbeScore
from psfm.probes.sources import ProbeFeatures


def descriptors(features: ProbeFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    def describe(tokens: torch.Tensor) -> torch.Tensor:
        return tokens.flatten(1) if features.ordered else tokens.mean(1)

    first, second = describe(features.scene_tokens).double(), describe(features.subset_tokens).double()
    centre = torch.cat([first, second]).mean(0)
    return F.normalize(first - centre, dim=-1), F.normalize(second - centre, dim=-1)


def similarity(features: ProbeFeatures) -> torch.Tensor:
    """[N, N] cosine similarity of subset A descriptors (rows) to subset B descriptors (columns)."""
    first, second = descriptors(features)
    return (first @ second.T).float()


def top_k(scores: torch.Tensor, k: int) -> float:
    """Expected share of rows whose own column (the diagonal) ranks in the top k, ties broken at random.

    With E columns tied with the own one (itself included) and G strictly above it, the own column
    lands in the top k with probability clamp((k - G) / E, 0, 1): constant features score chance, k / N.
    """
    own = scores.diagonal()[:, None]
    greater, tied = (scores > own).sum(1).float(), (scores == own).sum(1).float()
    return ((k - greater) / tied).clamp(0, 1).mean().item()


def view_invariance(features: ProbeFeatures) -> list[ProbeScore]:
    scores = similarity(features)
    both = (scores, scores.T)
    count = len(scores)
    off_diagonal = scores[~torch.eye(count, dtype=torch.bool)]
    gap = (scores.diagonal().mean() - off_diagonal.mean()).item()
    return [
        ProbeScore("view_invariance/retrieval", "top-1", [sum(top_k(s, 1) for s in both) / 2], False),
        ProbeScore("view_invariance/retrieval", "top-5", [sum(top_k(s, 5) for s in both) / 2], False),
        ProbeScore("view_invariance/retrieval", "cosine gap", [gap], False, extra={"similarity": scores}),
    ]
