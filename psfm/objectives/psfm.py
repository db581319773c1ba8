"""Predictive Spatial Field Modeling: encode context views, synthesize every view's teacher features.

The objective owns the field decoder, one head per teacher, and the depth probe; it receives the
encoder (to run on the views it chooses) and the frozen teachers. Randomness (which views are
context or target) came from the data side as index tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from psfm.encoders.backbones import PatchTokens
from psfm.encoders.inputs import ENCODER_INPUTS, depth_as_image
from psfm.encoders.spatial import SpatialEncoder
from psfm.objectives import references
from psfm.objectives.field_decoder import FieldDecoder
from psfm.objectives.heads import DepthProbe, FeatureHead
from psfm.objectives.losses import depth_probe_loss, feature_loss, median_aligned, normalize_targets, patch_depth
from psfm.objectives.rays import plucker_rays
from psfm.registry import Registry
from psfm.teachers.base import Teacher
from psfm.types import MultiViewBatch

LOSS_VIEWS = ("all", "target")


class PSFMObjective(nn.Module):
    """Args:
    dim: latent width D (the decoder runs at the encoder's width).
    teacher_dims: teacher name -> feature channels Dt; one head each.
    decoder: ``FieldDecoder`` kwargs (depth, num_heads, camera_encoding ...).
    loss_views: ``all`` (Spa3R: context and target views) or ``target`` (only unseen views).
    teacher_weights: per-teacher loss weight (default 1).
    l1_weight, cosine_weight: the two terms of each teacher's loss.
    target_norm: ``layernorm`` or ``none`` on teacher features (see ``normalize_targets``).
    depth_probe: train the detached depth probe when batches carry depth.
    context_input: ``images`` (PSFM) or ``depth``, an ablation that shows the encoder ground-truth
        depth instead of the photos (``psfm.encoders.inputs``).
    """

    def __init__(
        self,
        dim: int,
        teacher_dims: Mapping[str, int],
        decoder: Mapping | None = None,
        loss_views: str = "all",
        teacher_weights: Mapping[str, float] | None = None,
        l1_weight: float = 1.0,
        cosine_weight: float = 1.0,
        target_norm: str = "layernorm",
        depth_probe: bool = True,
        context_input: str = "images",
    ):
        super().__init__()
        if context_input not in ENCODER_INPUTS:
            raise ValueError(f"context_input must be one of {ENCODER_INPUTS}, got {context_input!r}")
        self.context_input = context_input
        if loss_views not in LOSS_VIEWS:
            raise ValueError(f"loss_views must be one of {LOSS_VIEWS}, got {loss_views!r}")
        if "depth_probe" in teacher_dims:
            raise ValueError("'depth_probe' names the built-in depth probe's logs; give the teacher another name")
        unknown = set(teacher_weights or {}) - set(teacher_dims)
        if unknown:
            raise ValueError(f"teacher_weights names unknown teachers {sorted(unknown)} (have {sorted(teacher_dims)})")
        self.decoder = FieldDecoder(dim=dim, **dict(decoder or {}))
        self.heads = nn.ModuleDict({name: FeatureHead(dim, out_dim) for name, out_dim in teacher_dims.items()})
        self.depth_probe = DepthProbe(dim) if depth_probe else None
        self.loss_views, self.target_norm = loss_views, target_norm
        self.teacher_weights = {name: float((teacher_weights or {}).get(name, 1.0)) for name in teacher_dims}
        self.l1_weight, self.cosine_weight = l1_weight, cosine_weight

    # the two choices a subclass may change ---------------------------------------------------------
    def check(self, batch: MultiViewBatch) -> None:
        if not bool(batch.has_pose.all()):
            missing = [key for key, posed in zip(batch.scene_keys, batch.has_pose.tolist(), strict=True) if not posed]
            raise ValueError(
                f"PSFM needs camera poses (gt, colmap or predicted) to place target views, but scenes {missing} "
                "have pose source 'none'. Add poses to those shards, or train with objective=per_view."
            )
        self._check_loss_views(batch)

    def _check_loss_views(self, batch: MultiViewBatch) -> None:
        if self.loss_views == "target" and batch.target_index.shape[1] == 0:
            raise ValueError("loss_views=target but the batch has no target views (raise views.max_views)")

    def loss_index(self, batch: MultiViewBatch) -> torch.Tensor:
        """Indices [B, K] into V of the views the loss covers: every view, or the target views only."""
        if self.loss_views == "all":
            return torch.arange(batch.num_views, device=batch.images.device).expand(batch.batch_size, -1)
        return batch.target_index

    def encoder_images(self, batch: MultiViewBatch) -> torch.Tensor:
        """[B, V, 3, H, W] what the encoder sees of each view: the photos, or (ablation) the true depth."""
        if self.context_input == "images":
            return batch.images
        if batch.depth is None:
            raise ValueError("context_input=depth needs batches with depth (datamodule.load_depth=true)")
        return depth_as_image(batch.depth)

    def synthesize(
        self, encoder: SpatialEncoder, batch: MultiViewBatch
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Decoder features [B, K, N, D] of the views the loss covers, their indices [B, K] into V, the patch grid."""
        context = encoder.encode_views(batch.gather_views(batch.context_index, self.encoder_images(batch)))
        rays = None
        if getattr(encoder.latent, "ray_embed", None) is not None:  # the posed-context ablation
            rays = plucker_rays(
                batch.gather_views(batch.context_index, batch.intrinsics),
                batch.gather_views(batch.context_index, batch.cam_to_world),
                context.grid,
                tuple(batch.images.shape[-2:]),
            )
        latents = encoder.encode_tokens(context, rays).latents
        index = self.loss_index(batch)
        features = self.decoder(
            latents,
            batch.gather_views(index, batch.intrinsics),
            batch.gather_views(index, batch.cam_to_world),
            context.grid,
            tuple(batch.images.shape[-2:]),
        )
        return features, index, context.grid

    # ----------------------------------------------------------------------------------------------
    def forward(
        self, encoder: SpatialEncoder, batch: MultiViewBatch, teachers: Mapping[str, Teacher]
    ) -> dict[str, torch.Tensor]:
        """Returns ``loss`` (what the optimizer minimizes) and detached parts for logging."""
        self.check(batch)
        features, index, grid = self.synthesize(encoder, batch)  # B K N D
        out: dict[str, torch.Tensor] = {}
        total = features.new_zeros(())
        for name, teacher in teachers.items():
            # clean (un-jittered) images, every view of each scene at once: joint teachers (VGGT) see them together
            targets = teacher.batch_targets(batch, grid)  # B V N Dt
            targets = normalize_targets(targets, self.target_norm)
            predictions = self.heads[name](features)
            loss, parts = feature_loss(
                predictions, batch.gather_views(index, targets), self.l1_weight, self.cosine_weight
            )
            total = total + self.teacher_weights[name] * loss
            out[f"{name}/loss"] = loss.detach()
            out.update({f"{name}/{part}": value for part, value in parts.items()})
            out.update(self._target_metrics(name, predictions.detach(), targets, batch))
        if self.depth_probe is not None and batch.depth is not None:
            log_depth = self.depth_probe(features)
            depth = batch.gather_views(index, batch.depth).flatten(0, 1)
            depth_loss, abs_rel = depth_probe_loss(log_depth.flatten(0, 1), depth, grid)
            total = total + depth_loss  # gradients reach the probe only (its input is detached)
            out["depth_probe/loss"], out["depth_probe/abs_rel"] = depth_loss.detach(), abs_rel
            out.update(self._target_depth_metrics(log_depth.detach(), batch, grid))
        out["loss"] = total
        return out

    def _target_metrics(
        self, name: str, predictions: torch.Tensor, targets: torch.Tensor, batch: MultiViewBatch
    ) -> dict[str, torch.Tensor]:
        """Loss on unseen views only, beside the two non-learned references on the same views.

        ``predictions`` cover the loss views (every view, or the targets alone); ``targets`` every view.
        """
        if batch.target_index.shape[1] == 0 or not bool(batch.has_pose.all()):
            return {}
        on_targets = predictions
        if self.loss_views == "all":
            on_targets = batch.gather_views(batch.target_index, predictions)
        truth = batch.gather_views(batch.target_index, targets)
        metrics = {f"{name}/target_loss": feature_loss(on_targets, truth, self.l1_weight, self.cosine_weight)[0]}
        for reference in ("copy_nearest", "mean_context"):
            guess = getattr(references, reference)(targets, batch)
            metrics[f"{name}/ref_{reference}"] = feature_loss(guess, truth, self.l1_weight, self.cosine_weight)[0]
        return metrics

    def _target_depth_metrics(
        self, log_depth: torch.Tensor, batch: MultiViewBatch, grid: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """The depth probe's AbsRel on unseen views only, beside the two references' AbsRel on the same patches.

        ``depth_probe/abs_rel`` mixes in the context views (``loss_views=all``), whose depth a per-view
        backbone can read off the image; only the target views say whether the latents place the scene.
        """
        if batch.target_index.shape[1] == 0 or not bool(batch.has_pose.all()):
            return {}
        if self.loss_views == "all":
            log_depth = batch.gather_views(batch.target_index, log_depth)
        depth, valid = patch_depth(batch.depth.flatten(0, 1), grid)  # (B V) N
        depth, valid = depth.unflatten(0, batch.depth.shape[:2]), valid.unflatten(0, batch.depth.shape[:2])
        truth = batch.gather_views(batch.target_index, depth)
        known = batch.gather_views(batch.target_index, valid)
        if not bool(known.any()):
            return {}
        guesses = {"target_abs_rel": log_depth.float().exp()}
        for reference in ("copy_nearest", "mean_context"):  # context patches without depth left out of the mean
            total = getattr(references, reference)((depth * valid)[..., None], batch)[..., 0]
            count = getattr(references, reference)(valid[..., None].float(), batch)[..., 0]
            guesses[f"ref_{reference}"] = total / count.clamp_min(1e-6)
        # scale-aligned (each view times its median ratio to the truth): the view's *shape*, not the room's size
        unknown_as_nan = torch.where(known, truth, torch.full_like(truth, float("nan")))
        for name, guess in list(guesses.items()):
            guesses[f"{name}_aligned"] = median_aligned(guess, unknown_as_nan)
        return {
            f"depth_probe/{name}": ((guess - truth).abs() / truth.clamp_min(1e-6))[known].mean()
            for name, guess in guesses.items()
        }


class PerViewObjective(PSFMObjective):
    """Baseline: each view is encoded alone and decoded as itself (identity pose): no cross-view synthesis.

    Same encoder, decoder, heads and losses as PSFM, so the comparison isolates the objective.
    Needs no poses. ``loss_views`` picks the views encoded and reconstructed (every view, or the
    target views only); context/target carries no other meaning here.
    """

    def check(self, batch: MultiViewBatch) -> None:
        self._check_loss_views(batch)

    def synthesize(
        self, encoder: SpatialEncoder, batch: MultiViewBatch
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        index = self.loss_index(batch)  # B K
        views = encoder.encode_views(batch.gather_views(index, self.encoder_images(batch)))  # B K N Db
        single = PatchTokens(views.tokens.flatten(0, 1)[:, None], views.grid)  # (B K) 1 N Db
        latents = encoder.encode_tokens(single).latents
        identity = torch.eye(4, device=latents.device).expand(latents.shape[0], 1, 4, 4)
        intrinsics = batch.gather_views(index, batch.intrinsics).flatten(0, 1)[:, None]
        features = self.decoder(latents, intrinsics, identity, views.grid, tuple(batch.images.shape[-2:]))
        return features.squeeze(1).unflatten(0, tuple(index.shape)), index, views.grid

    def _target_metrics(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        return {}

    def _target_depth_metrics(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        return {}


OBJECTIVES: Registry[PSFMObjective] = Registry("objective")
OBJECTIVES.register("psfm")(PSFMObjective)
OBJECTIVES.register("per_view")(PerViewObjective)
