"""Questions about named objects, read from the scene tokens: how far apart, and which is closer.

An object is named by category + colour ("the red crate"), as spatial QA names it, and only
objects the name makes unique in their scene and that some context view sees (box centre in
front of the camera and inside the image; occlusion is not modelled) are asked about: an object
the encoder never saw can only be guessed. Per scene, a seeded draw of questions:

* ``object_distance``: distance in metres between the centres of two named objects (MAE).
* ``closer_object``: is A closer to C than B is? (accuracy; pairs within 0.25 m of a tie are
  skipped, as QA's ambiguity filter does). Chance is 50 %.

``NamedObjectProbe`` turns each name into its own query (plus a learned embedding of its role in
the question), lets it attend to the scene tokens to find that object, and answers from what the
queries found: the probe has to locate each object in the token set, not only pool the set.
Fit on train scenes, scored on held-out scenes; the constant source gives the floor (what the
names alone say).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from psfm.probes.models import TokenInput, fit_probe
from psfm.probes.results import ProbeScore, fit_record
from psfm.probes.scenes import ProbeScenes
from psfm.probes.sources import ProbeFeatures
from psfm.probes.targets import seen_objects

TIE_MARGIN = 0.25  # metres: closer-object questions nearer a tie than this are not asked
QUESTIONS_PER_SCENE = 8


@dataclass
class Vocabulary:
    """Names seen in the train split: one-hot slots for categories and colours (unknown names: zeros)."""

    categories: list[str]
    colours: list[str]

    @classmethod
    def of(cls, scenes: ProbeScenes) -> Vocabulary:
        objects = [obj for meta in scenes.metas for obj in meta.get("objects") or []]
        return cls(sorted({o.get("category", "?") for o in objects}), sorted({str(o.get("color")) for o in objects}))

    @property
    def width(self) -> int:
        return len(self.categories) + len(self.colours)

    def encode(self, obj: dict) -> np.ndarray:
        code = np.zeros(self.width, np.float32)
        if obj.get("category") in self.categories:
            code[self.categories.index(obj["category"])] = 1
        if str(obj.get("color")) in self.colours:
            code[len(self.categories) + self.colours.index(str(obj.get("color")))] = 1
        return code


class NamedObjectProbe(nn.Module):
    """tokens [B, L, Din] + names [B, k, Dn] (one-hot category ⊕ colour per named object) -> [B] answer."""

    def __init__(self, in_dim: int, name_dim: int, roles: int, dim: int = 64, num_heads: int = 4, mark_first=False):
        super().__init__()
        self.input = TokenInput(in_dim, dim, mark_first=mark_first)
        self.mix = nn.TransformerEncoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(dim)
        self.names = nn.Sequential(nn.Linear(name_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.roles = nn.Parameter(torch.randn(roles, dim) * 0.02)
        self.attend = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.head = nn.Sequential(nn.Linear(roles * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, 1))

    def forward(self, tokens: torch.Tensor, names: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.mix(self.input(tokens)))
        queries = self.names(names) + self.roles
        found, _ = self.attend(queries, x, x, need_weights=False)
        return self.head(found.flatten(1)).squeeze(-1)  # B


@dataclass
class Questions:
    """scene [Q] index into the scenes, question [Q, Dq] names as one-hots, answer [Q]."""

    scene: torch.Tensor
    question: torch.Tensor
    answer: torch.Tensor


def seen_unique_objects(scenes: ProbeScenes, index: int) -> list[tuple[dict, np.ndarray]]:
    """(object, centre in metres) of the objects unique by category + colour whose centre a context view sees."""
    names = [(o.get("category"), o.get("color")) for o in scenes.metas[index].get("objects") or []]
    return [
        (obj, centre)
        for obj, centre in seen_objects(scenes, index)
        if names.count((obj.get("category"), obj.get("color"))) == 1
    ]


def build_questions(scenes: ProbeScenes, vocabulary: Vocabulary, kind: str, seed: int = 0) -> Questions:
    """Up to ``QUESTIONS_PER_SCENE`` questions of ``kind`` (``distance`` or ``closer``) per scene."""
    rows_scene, rows_question, rows_answer = [], [], []
    for index in range(len(scenes)):
        rng = random.Random(f"{seed}/{scenes.keys[index]}/{kind}")
        objects = seen_unique_objects(scenes, index)
        candidates = list(itertools.permutations(range(len(objects)), 2 if kind == "distance" else 3))
        rng.shuffle(candidates)
        asked = 0
        for combo in candidates:
            if asked == QUESTIONS_PER_SCENE:
                break
            codes = [vocabulary.encode(objects[i][0]) for i in combo]
            centres = [objects[i][1] for i in combo]
            if kind == "distance":
                answer = float(np.linalg.norm(centres[0] - centres[1]))
            else:
                to_first, to_second = (float(np.linalg.norm(c - centres[2])) for c in centres[:2])
                if abs(to_first - to_second) < TIE_MARGIN:
                    continue
                answer = float(to_first < to_second)
            rows_scene.append(index)
            rows_question.append(np.concatenate(codes))
            rows_answer.append(answer)
            asked += 1
    width = vocabulary.width * (2 if kind == "distance" else 3)
    return Questions(
        torch.tensor(rows_scene, dtype=torch.long),
        torch.from_numpy(np.stack(rows_question)) if rows_question else torch.zeros(0, width),
        torch.tensor(rows_answer, dtype=torch.float32),
    )


def object_probes(
    train: ProbeFeatures,
    val: ProbeFeatures,
    train_scenes: ProbeScenes,
    val_scenes: ProbeScenes,
    seeds: list[int],
    steps: int = 1800,
    kinds: tuple[str, ...] = ("distance", "closer"),
) -> list[ProbeScore]:
    """Fit and score each question kind; ``steps`` per fit (the probe learns to find objects by name only
    after ~1000 steps at batch 64 even on tokens that hold every answer, so it needs ~3x a fact probe's)."""
    vocabulary = Vocabulary.of(train_scenes)
    out = []
    for kind in kinds:
        fit_q, test_q = build_questions(train_scenes, vocabulary, kind), build_questions(val_scenes, vocabulary, kind)
        if len(fit_q.answer) < 16 or len(test_q.answer) == 0:
            continue
        fits = [_fit_and_score(train, val, fit_q, test_q, kind, seed, steps) for seed in seeds]
        values, curves = [value for value, _ in fits], [curve for _, curve in fits]
        probe = "object_distance/attentive" if kind == "distance" else "closer_object/attentive"
        fitted = fit_record(probe, curves)
        if kind == "distance":
            out.append(ProbeScore(probe, "MAE (m)", values, extra={"questions": len(test_q.answer), **fitted}))
        else:
            out.append(ProbeScore(probe, "accuracy", values, lower_is_better=False, extra=fitted))
    return out


def _fit_and_score(train, val, fit_q: Questions, test_q: Questions, kind: str, seed: int, steps: int):
    """(held-out score, the fit's holdout curve)."""
    tokens = train.scene_tokens
    mean, std = fit_q.answer.mean(), fit_q.answer.std().clamp_min(1e-6)

    roles = 2 if kind == "distance" else 3
    width = fit_q.question.shape[1] // roles  # one name's one-hot width

    def loss_fn(model: NamedObjectProbe, scene: torch.Tensor, question: torch.Tensor, answer: torch.Tensor):
        out = model(tokens[scene], question.unflatten(1, (-1, width)))
        if kind == "distance":
            return (out - (answer - mean) / std).square().mean()
        return torch.nn.functional.binary_cross_entropy_with_logits(out, answer)

    torch.manual_seed(seed)
    model = NamedObjectProbe(tokens.shape[-1], width, roles, mark_first=train.first_is_reference)
    fit_probe(model, (fit_q.scene, fit_q.question, fit_q.answer), loss_fn, steps=steps, seed=seed)
    with torch.no_grad():
        out = model(val.scene_tokens[test_q.scene], test_q.question.unflatten(1, (-1, width)))
    if kind == "distance":
        return (out * std + mean - test_q.answer).abs().mean().item(), model.holdout_curve
    return ((out > 0).float() == test_q.answer).float().mean().item(), model.holdout_curve
