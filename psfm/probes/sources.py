"""Feature sources a probe run compares: encoders, their baselines, and a constant floor.

Every source turns the fixed probe views of S scenes into the same ``ProbeFeatures``, so each
probe runs unchanged on a trained encoder, its random-init twin, mean-pooled backbone tokens, a
non-learned thumbnail and the constant floor (which can only learn the train mean: the
"train-mean / chance" row of every table, computed by the very same probe code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from psfm.export import FrozenSpatialEncoder
from psfm.probes.scenes import ProbeScenes

THUMBNAIL_SIZE = 8  # per-view thumbnail side (8 x 8 x 3 = 192 numbers a view)
PATCH_PIXELS = 4  # per-patch thumbnail side for patch-level features (4 x 4 x 3 = 48 numbers a patch)


@dataclass
class ProbeFeatures:
    """Frozen features of S scenes from one source.

    Attributes:
        scene_tokens: [S, L, D] the scene representation built from the context views (subset A).
        subset_tokens: [S, L, D] the same from the disjoint views C..2C-1 (subset B, view invariance).
        view_tokens: [S, C, N, Dv] per-patch tokens of each context view, on ``grid``.
        grid: (h, w) patch grid of ``view_tokens``.
        ordered: token i means the same thing in every scene (latent queries): retrieval compares
            token by token; otherwise tokens form a set (one per view) and are mean-pooled.
        first_is_reference: token 0 belongs to the reference view (per-view sources); probes then
            mark it, as the encoder marks its reference view, so both get the same information.
        shared_reference_tokens: [S, L, D] the same from view 0 and views C+1..2C-1: subset B with
            A's reference view in place of its own, so the pair shares the frame the targets are
            posed in (``reference_subsets``); None where C < 2 or not asked for (``frame_aware``:
            these subsets are read on held-out scenes only, so train scenes skip their encoding).
        moved_reference_tokens: [S, L, D] the same from A's own views with view 1 as the reference:
            how much the representation depends on which view defines its frame; None where C < 2.
        reference_tokens: [S, L', D] the same from A's reference view alone (view 0; L' = 1 for
            per-view sources): what the scene tokens owe to the other context views, read by
            ``target_depth`` on held-out scenes; None where C < 2 or not asked for.
    """

    scene_tokens: torch.Tensor
    subset_tokens: torch.Tensor
    view_tokens: torch.Tensor
    grid: tuple[int, int]
    ordered: bool
    first_is_reference: bool
    shared_reference_tokens: torch.Tensor | None = None
    moved_reference_tokens: torch.Tensor | None = None
    reference_tokens: torch.Tensor | None = None


def reference_subsets(context: int) -> dict[str, list[int]]:
    """View positions of the two frame-aware retrieval subsets, for C context views (none where C < 2).

    PSFM poses its targets in the reference view's frame (view 0), so a trained encoder's latents
    are a scene *in that frame*: subsets with different reference views describe the scene in two
    frames. ``shared`` keeps A's reference view and swaps the others for B's (views 0, C+1..2C-1);
    ``moved`` keeps A's views and makes view 1 the reference (views 1..C-1, 0).
    """
    if context < 2:
        return {}
    return {"shared": [0, *range(context + 1, 2 * context)], "moved": [*range(1, context), 0]}


def _batches(num_scenes: int, size: int):
    for start in range(0, num_scenes, size):
        yield slice(start, min(num_scenes, start + size))


class EncoderSource:
    """A psfm encoder: latents of the context views; its backbone's patch tokens per view.

    Takes the ``FrozenSpatialEncoder`` of ``psfm.load`` or a live ``SpatialEncoder`` (online
    probing during training) with the image size it was trained at and what it sees of each view
    (``input_kind``, ``psfm.encoders.inputs``; an export knows its own); it is only ever run without
    gradients, and callers own its train/eval mode.
    """

    ordered, first_is_reference = True, False

    def __init__(
        self,
        encoder: nn.Module,
        image_size: tuple[int, int] | None = None,
        batch_size: int = 16,
        input_kind: str = "images",
    ):
        if isinstance(encoder, FrozenSpatialEncoder):
            image_size, input_kind, encoder = encoder.image_size, encoder.input_kind, encoder.encoder
        if image_size is None:
            raise ValueError("EncoderSource needs the image size the encoder was trained at")
        self.spatial, self.image_size, self.batch_size = encoder, tuple(image_size), batch_size
        self.input_kind = input_kind

    @property
    def device(self) -> torch.device:
        return next(self.spatial.parameters()).device

    @torch.no_grad()
    def features(self, scenes: ProbeScenes, frame_aware: bool = True) -> ProbeFeatures:
        spatial = self.spatial
        context = scenes.num_context
        frames = reference_subsets(context) if frame_aware else {}  # train scenes need none: nothing fits on them
        alone = {"alone": slice(0, 1)} if frames else {}
        subsets = {"scene": slice(0, context), "subset": slice(context, 2 * context), **frames, **alone}
        latents: dict[str, list[torch.Tensor]] = {name: [] for name in subsets}
        view_tokens, grid = [], (0, 0)
        for part in _batches(len(scenes), self.batch_size):
            # each subset is encoded on its own: a joint multi-view backbone must not see the other subset
            for name, views in subsets.items():
                encoded = spatial.encode_views(self._inputs(scenes, part, views))
                latents[name].append(spatial.encode_tokens(encoded).latents.float().cpu())
                if name == "scene":
                    grid = encoded.grid
                    view_tokens.append(encoded.tokens.float().cpu())
        tokens = {name: torch.cat(parts) for name, parts in latents.items()}
        return ProbeFeatures(
            tokens["scene"],
            tokens["subset"],
            torch.cat(view_tokens),
            grid,
            True,
            False,
            tokens.get("shared"),
            tokens.get("moved"),
            tokens.get("alone"),
        )

    def _inputs(self, scenes: ProbeScenes, part: slice, views: slice) -> torch.Tensor:
        return scenes.encoder_inputs(self.input_kind, part, views).to(self.device)


class BackboneMeanSource(EncoderSource):
    """An encoder's per-view backbone alone: one mean-pooled token per context view (no latent encoder)."""

    ordered, first_is_reference = False, True

    @torch.no_grad()
    def features(self, scenes: ProbeScenes, frame_aware: bool = True) -> ProbeFeatures:
        backbone = self.spatial
        context = scenes.num_context
        first, second, grid = [], [], (0, 0)
        for part in _batches(len(scenes), self.batch_size):
            for subset, store in ((slice(0, context), first), (slice(context, 2 * context), second)):
                views = backbone.encode_views(self._inputs(scenes, part, subset))
                store.append(views.tokens.float().cpu())
                grid = views.grid
        tokens = torch.cat(first)  # S C N Db
        pooled = torch.cat([tokens.mean(2), torch.cat(second).mean(2)], dim=1)  # S 2C Db
        return per_view_features(pooled, tokens, grid, context, frame_aware)


def per_view_features(
    per_view: torch.Tensor, view_tokens: torch.Tensor, grid: tuple[int, int], context: int, frame_aware: bool = True
) -> ProbeFeatures:
    """``ProbeFeatures`` of a per-view source from one descriptor per probe view, per_view [S, 2C, D]."""
    subsets = reference_subsets(context) if frame_aware else {}
    shared, moved = (per_view[:, subsets[name]] if subsets else None for name in ("shared", "moved"))
    alone = per_view[:, :1] if subsets else None
    return ProbeFeatures(
        per_view[:, :context], per_view[:, context:], view_tokens[:, :context], grid, False, True, shared, moved, alone
    )


class ThumbnailSource:
    """Non-learned: an 8 x 8 thumbnail per view; per patch, a 4 x 4 thumbnail of the patch's pixels.

    Of what the encoders compared see (``input_kind``): a depth-input encoder is held to depth thumbnails.
    """

    ordered, first_is_reference = False, True

    def __init__(self, image_size: tuple[int, int], patch_size: int = 16, input_kind: str = "images"):
        self.image_size, self.patch_size, self.input_kind = tuple(image_size), patch_size, input_kind

    def features(self, scenes: ProbeScenes, frame_aware: bool = True) -> ProbeFeatures:
        context = scenes.num_context
        grid = (scenes.image_size[0] // self.patch_size, scenes.image_size[1] // self.patch_size)
        thumbs, patches = [], []
        for part in _batches(len(scenes), 64):
            images = scenes.encoder_inputs(self.input_kind, part, slice(0, 2 * context))  # s 2C 3 H W
            flat = images.flatten(0, 1)
            thumbs.append(F.adaptive_avg_pool2d(flat, THUMBNAIL_SIZE).flatten(1).unflatten(0, images.shape[:2]))
            small = F.adaptive_avg_pool2d(flat, (grid[0] * PATCH_PIXELS, grid[1] * PATCH_PIXELS))
            small = small.unflatten(2, (grid[0], PATCH_PIXELS)).unflatten(4, (grid[1], PATCH_PIXELS))  # M 3 h p w p
            small = small.permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(1, 2)  # M N (3 p p)
            patches.append(small.unflatten(0, images.shape[:2])[:, :context])
        return per_view_features(torch.cat(thumbs), torch.cat(patches), grid, context, frame_aware)


class ConstantSource:
    """The floor: the same features for every scene, so a probe can learn nothing but the train mean."""

    ordered, first_is_reference = True, False

    def __init__(self, image_size: tuple[int, int], patch_size: int = 16):
        self.image_size, self.patch_size = tuple(image_size), patch_size

    def features(self, scenes: ProbeScenes, frame_aware: bool = True) -> ProbeFeatures:
        grid = (scenes.image_size[0] // self.patch_size, scenes.image_size[1] // self.patch_size)
        count = len(scenes)
        zeros = torch.zeros(count, 1, 1)
        views = torch.zeros(count, scenes.num_context, grid[0] * grid[1], 1)
        shared, moved, alone = (zeros.clone() if frame_aware and scenes.num_context >= 2 else None for _ in range(3))
        return ProbeFeatures(zeros, zeros.clone(), views, grid, True, False, shared, moved, alone)
