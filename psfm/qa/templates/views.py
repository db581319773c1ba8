"""Choosing the view that frames a question about some objects."""

from __future__ import annotations

from psfm.qa.context import SceneContext


def best_view(context: SceneContext, ids: tuple[int, ...]) -> int | None:
    """The view where the least visible of ``ids`` is most visible (None if no view shows them all).

    View-independent questions (sizes, heights) still come with one image; picking the view that
    shows every referent best keeps them answerable from that image alone.
    """
    candidates = [v for v, seen in context.visible.items() if all(i in seen for i in ids)]
    if not candidates:
        return None
    if not all(context.obj(i).pixels_per_view for i in ids):
        return candidates[0]
    return max(candidates, key=lambda v: (min(context.obj(i).pixels_per_view[v] for i in ids), -v))
