"""Scene facts from the scene tokens alone: a pooled-linear probe and an attentive probe.

Both are fit on train scenes and scored on held-out scenes by the mean absolute error in the
fact's unit (averaged over columns, e.g. over categories for counts).
"""

from __future__ import annotations

import torch

from psfm.probes.models import AttentiveProbe, Ridge, fit_probe
from psfm.probes.results import ProbeScore, bootstrap_ci, fit_record
from psfm.probes.sources import ProbeFeatures
from psfm.probes.targets import SceneFact


def pooled(tokens: torch.Tensor) -> torch.Tensor:
    """[S, L, D] -> [S, 2D]: mean and standard deviation over tokens (a set's first two moments)."""
    std = tokens.std(1) if tokens.shape[1] > 1 else torch.zeros_like(tokens[:, 0])
    return torch.cat([tokens.mean(1), std], dim=-1)


def pooled_linear(train: ProbeFeatures, val: ProbeFeatures, fact: SceneFact, fact_val: SceneFact) -> ProbeScore:
    ridge = Ridge().fit(pooled(train.scene_tokens), fact.values)
    predicted = ridge.predict(pooled(val.scene_tokens))
    per_scene = (predicted - fact_val.values).abs().mean(1)
    return ProbeScore(
        f"{fact.name}/linear",
        f"MAE ({fact.unit})",
        [per_scene.mean().item()],
        ci=bootstrap_ci(per_scene),
        extra={"predicted": predicted, "alpha": ridge.alpha},
    )


def _standardized_mse(model: AttentiveProbe, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (model(tokens) - targets).square().mean()


def attentive(
    train: ProbeFeatures,
    val: ProbeFeatures,
    facts: list[SceneFact],
    facts_val: list[SceneFact],
    seeds: list[int],
    steps: int = 600,
) -> list[ProbeScore]:
    """One attentive probe per seed reads every fact at once (standardized outputs), scored fact by fact."""
    targets = torch.cat([fact.values for fact in facts], dim=1)
    truth = torch.cat([fact.values for fact in facts_val], dim=1)
    mean, std = targets.mean(0), targets.std(0).clamp_min(1e-6)
    widths = [fact.values.shape[1] for fact in facts]
    errors: list[list[float]] = [[] for _ in facts]
    first, curves = None, []
    for seed in seeds:
        torch.manual_seed(seed)
        model = AttentiveProbe(train.scene_tokens.shape[-1], targets.shape[1], mark_first=train.first_is_reference)
        fit_probe(model, (train.scene_tokens, (targets - mean) / std), _standardized_mse, steps=steps, seed=seed)
        curves.append(model.holdout_curve)
        with torch.no_grad():
            predicted = model(val.scene_tokens) * std + mean
        for index, (error, guess) in enumerate(zip(predicted.split(widths, 1), truth.split(widths, 1), strict=True)):
            errors[index].append((error - guess).abs().mean().item())
        first = predicted if first is None else first
    scores = [
        ProbeScore(f"{fact.name}/attentive", f"MAE ({fact.unit})", values, extra={"predicted": part})
        for fact, values, part in zip(facts, errors, first.split(widths, 1), strict=True)
    ]
    scores[0].extra.update(fit_record("facts/attentive", curves))  # one model reads every fact
    return scores
