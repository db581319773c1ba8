"""One probe's score for one feature source, with its spread, and how it is summarized."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class ProbeScore:
    """A metric of one probe on one source.

    Attributes:
        probe: e.g. ``floor_area/attentive``; metric: e.g. ``MAE (m²)``.
        values: one value per probe seed (learned probes) or a single value (closed-form probes).
        ci: 95 % bootstrap interval over held-out scenes (closed-form probes), else None.
        lower_is_better: the direction a person reads the metric in.
    """

    probe: str
    metric: str
    values: list[float]
    lower_is_better: bool = True
    ci: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def spread(self) -> float:
        """Standard deviation over seeds (0 for one value)."""
        if len(self.values) < 2:
            return 0.0
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (len(self.values) - 1))

    def text(self) -> str:
        if len(self.values) > 1:
            return f"{self.mean:.3f} ± {self.spread:.3f}"
        if self.ci is not None:
            return f"{self.mean:.3f} [{self.ci[0]:.3f}, {self.ci[1]:.3f}]"
        return f"{self.mean:.3f}"

    def to_json(self) -> dict:
        return {
            "probe": self.probe,
            "metric": self.metric,
            "mean": self.mean,
            "std_over_seeds": self.spread,
            "values": self.values,
            "ci95": list(self.ci) if self.ci else None,
            "lower_is_better": self.lower_is_better,
        }


def fit_record(fitted: str, curves: list[list[tuple[int, float]]]) -> dict:
    """What a learned probe's score carries in ``extra`` about its fits (one entry per fitted model).

    ``fitted`` names the model (``facts/attentive`` reads every fact, so only the first fact's score
    carries it); ``holdout_curves`` is each seed's [(step, holdout loss), ...] from ``fit_probe``.
    """
    return {"fitted": fitted, "holdout_curves": [list(curve) for curve in curves]}


def bootstrap_ci(per_scene: torch.Tensor, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``per_scene`` [S] values (NaN left out), resampling scenes."""
    per_scene = per_scene[~torch.isnan(per_scene)]
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(len(per_scene), (resamples, len(per_scene)), generator=generator)
    means = per_scene.double()[index].mean(1)
    return float(means.quantile(0.025)), float(means.quantile(0.975))
