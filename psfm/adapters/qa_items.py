"""QA shards -> per-question frozen features, computed once: the visual tokens and the scene latents.

Everything upstream of the trainable parts is frozen, so it runs once per scene, not once per step
(the cost that makes the offline demo fit on 2 CPU cores):

    QA shard scene --views fitted as the loader fits them--> image tower --> visual [k, N, F] per question
                                                            \\-> psfm encoder (frozen) --> latents [L, D] per question

The encoder sees the views the question shows (``question.views``), the same ones the VLM sees, so an
adapter arm gets no view the VLM lacks. Questions without a view are skipped and counted.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from psfm.datamodules.batching import SceneBatcher
from psfm.datamodules.epoch import SharedEpoch
from psfm.datamodules.format import ShardFormatError
from psfm.datamodules.shardlists import resolve_shards
from psfm.datamodules.views import ViewSampling
from psfm.encoders.inputs import depth_as_image
from psfm.export import FrozenSpatialEncoder
from psfm.progress import track
from psfm.qa.question import Question
from psfm.qa.shard_io import iter_scenes

ImageTower = Callable[[torch.Tensor], torch.Tensor]  # images [M, 3, H, W] in [0, 1] -> [M, N, F]


@dataclass
class QAItem:
    """One question with its frozen inputs: visual [k, N, F] (k shown views), latents [L, D] or None."""

    question: Question
    visual: torch.Tensor
    latents: torch.Tensor | None


@dataclass
class QAItems:
    items: list[QAItem]
    skipped: Counter
    scenes: int


def _decoder(size: Sequence[int], depth: bool) -> SceneBatcher:
    return SceneBatcher(1, ViewSampling(min_views=1, max_views=1), tuple(size), SharedEpoch(), load_depth=depth)


@torch.no_grad()
def load_qa_items(
    source: str,
    image_tower: ImageTower,
    tower_size: Sequence[int],
    encoder: FrozenSpatialEncoder | None = None,
    max_scenes: int | None = None,
    progress: bool = True,
    description: str = "frozen features",
) -> QAItems:
    """Read the QA shards of ``source`` (a folder, glob or ``psfm qa`` output) in order.

    Raises:
        ValueError: no question with views in ``source`` (a shard set without ``psfm qa`` questions).
    """
    shards = resolve_shards(source)
    tower_decoder = _decoder(tower_size, depth=False)
    depth_input = encoder is not None and encoder.input_kind == "depth"
    encoder_decoder = None if encoder is None else _decoder(encoder.image_size, depth=depth_input)
    items, skipped, scenes = [], Counter(), 0
    total = max_scenes or shards.num_samples or 0
    for scene in track(iter_scenes(shards.urls), total, description, "scenes", enabled=progress):
        if max_scenes is not None and scenes >= max_scenes:
            break
        records = (scene.meta.raw.get("qa") or {}).get("questions") or []
        if not records:
            skipped["scene_without_questions"] += 1
            continue
        scenes += 1
        questions = [Question.from_json(record) for record in records]
        shown = sorted({view for question in questions for view in question.views})
        try:
            visual = _tower_features(scene, shown, tower_decoder, image_tower)
            inputs = None if encoder is None else _encoder_inputs(scene, shown, encoder_decoder, depth_input)
        except ShardFormatError:
            skipped["undecodable_scene"] += 1
            continue
        latents_of: dict[tuple[int, ...], torch.Tensor] = {}
        for question in questions:
            if not question.views:
                skipped["question_without_views"] += 1
                continue
            positions = [shown.index(view) for view in question.views]
            latents = None
            if encoder is not None:
                views = tuple(question.views)
                if views not in latents_of:
                    latents_of[views] = encoder(inputs[None, positions])[0].float()
                latents = latents_of[views]
            items.append(QAItem(question, visual[positions], latents))
    if not items:
        raise ValueError(f"{source}: no question with views in {len(shards.urls)} shards (skipped: {dict(skipped)})")
    return QAItems(items, skipped, scenes)


def _tower_features(scene, views: list[int], decoder: SceneBatcher, tower: ImageTower) -> torch.Tensor:
    decoded = decoder.decode(scene, views, random.Random(0))
    images = torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in decoded.images]).float() / 255
    return tower(images).float()  # [V, N, F]


def _encoder_inputs(scene, views: list[int], decoder: SceneBatcher, depth_input: bool) -> torch.Tensor:
    decoded = decoder.decode(scene, views, random.Random(0))
    if depth_input:
        depth = torch.stack([torch.from_numpy(np.array(d)) for d in decoded.depths]).float()[:, None]  # V 1 H W
        return depth_as_image(depth[None])[0]
    return torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in decoded.images]).float() / 255
