"""View invariance: the scene tokens of two disjoint view subsets of a scene must find each other.

Each held-out scene is encoded twice, from views 0..C-1 and from views C..2C-1 (no view shared).
Descriptors are the tokens flattened (ordered sources: latent i means the same in every scene) or
mean-pooled (per-view sources), centred on the gallery mean (so a component every scene shares,
such as the learned latent queries, does not dominate the cosine) and L2-normalized. Subset A
retrieves among the N subsets B and vice versa; no training, nothing to fit.

PSFM poses its targets in the reference view's frame, so its latents may rightly describe the
scene *in that frame*; A and B then differ by a change of frame as well as of views. Two
frame-aware variants separate the two (``sources.reference_subsets``): ``shared_reference``
(B's views with A's reference view: same frame, mostly new views) and ``moved_reference`` (A's
own views, view 1 made the reference: same views, new frame). A representation of the scene in
its reference frame scores high on the first and low on the second; a frame-free one high on both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from psfm.probes.results import ProbeScore
from psfm.probes.sources import ProbeFeatures


def descriptors(features: ProbeFeatures, gallery: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred, normalized descriptors of subset A and of ``gallery`` (default: subset B), [S, L*D] each."""

    def describe(tokens: torch.Tensor) -> torch.Tensor:
        return tokens.flatten(1) if features.ordered else tokens.mean(1)

    gallery = features.subset_tokens if gallery is None else gallery
    first, second = describe(features.scene_tokens).double(), describe(gallery).double()
    centre = torch.cat([first, second]).mean(0)
    return F.normalize(first - centre, dim=-1), F.normalize(second - centre, dim=-1)


def similarity(features: ProbeFeatures, gallery: torch.Tensor | None = None) -> torch.Tensor:
    """[N, N] cosine similarity of subset A descriptors (rows) to ``gallery``'s (columns; default subset B)."""
    first, second = descriptors(features, gallery)
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
    out = [
        ProbeScore("view_invariance/retrieval", "top-1", [sum(top_k(s, 1) for s in both) / 2], False),
        ProbeScore("view_invariance/retrieval", "top-5", [sum(top_k(s, 5) for s in both) / 2], False),
        ProbeScore("view_invariance/retrieval", "cosine gap", [gap], False, extra={"similarity": scores}),
    ]
    for probe, gallery in (
        ("view_invariance/shared_reference", features.shared_reference_tokens),
        ("view_invariance/moved_reference", features.moved_reference_tokens),
    ):
        if gallery is not None:
            variant = similarity(features, gallery)
            out.append(ProbeScore(probe, "top-1", [(top_k(variant, 1) + top_k(variant.T, 1)) / 2], False))
    return out
