"""The numbers ``psfm eval`` reports, gathered from a ``ScoreReport`` into one flat dict.

Keys: ``overall`` (unweighted mean of task scores) with ``overall_ci_low/high``; per task
``task/<name>`` with ``_ci_low/_ci_high``, ``_chance``, ``_frequency``, ``_count``; numeric answers
``numeric/mra``, ``numeric/within_factor_two`` (SpatialVLM [0.5x, 2x]), ``numeric/contains_number``,
``numeric/within_25_percent`` (SpatialRGPT), ``numeric/abs_rel`` (over parsed answers only);
``parse_failure_rate`` and ``missing_rate`` apart from accuracy; ``chance`` and ``frequency``
overall baselines; ``vsibench/<type>`` and ``vsibench/overall``: VSI-Bench's own aggregation (its three
relative-direction levels merged into ``vsibench/object_rel_direction``) over the questions VSI-Bench
would ask (``psfm.qa.vsibench``), with ``vsibench/questions`` their number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from psfm.qa.baselines import task_baselines
from psfm.qa.bootstrap import bootstrap_intervals
from psfm.qa.question import Question
from psfm.qa.scoring import ScoreReport
from psfm.qa.vsibench import vsibench_scores


def _rate(values: list[bool | None]) -> float:
    usable = [v for v in values if v is not None]
    return float(np.mean(usable)) if usable else float("nan")


def summarize(report: ScoreReport, questions: Sequence[Question], bootstrap: int = 1000, seed: int = 0) -> dict:
    """Every reported number as a flat ``{name: float}`` dict."""
    tasks = report.task_scores()
    intervals = bootstrap_intervals(report, bootstrap, seed)
    baselines = task_baselines(questions) if questions else {}
    metrics: dict[str, float] = {"questions": float(len(report.scored)), "overall": report.overall(tasks)}
    low, high = intervals.get("overall", (float("nan"), float("nan")))
    metrics.update(overall_ci_low=low, overall_ci_high=high)
    counts = {task: sum(s.task == task for s in report.scored) for task in tasks}
    for task, score in tasks.items():
        low, high = intervals.get(task, (float("nan"), float("nan")))
        metrics[f"task/{task}"] = score
        metrics[f"task/{task}_ci_low"], metrics[f"task/{task}_ci_high"] = low, high
        metrics[f"task/{task}_count"] = float(counts[task])
        for name in ("chance", "frequency"):
            metrics[f"task/{task}_{name}"] = baselines.get(task, {}).get(name, float("nan"))
    for name in ("chance", "frequency"):
        values = [metrics[f"task/{task}_{name}"] for task in tasks]
        metrics[name] = float(np.mean(values)) if values else float("nan")
    numeric = [s for s in report.scored if s.numeric]
    metrics["numeric/count"] = float(len(numeric))
    metrics["numeric/mra"] = float(np.mean([s.score for s in numeric])) if numeric else float("nan")
    metrics["numeric/within_factor_two"] = _rate([s.within_factor_two for s in numeric])
    metrics["numeric/contains_number"] = _rate([s.contains_number for s in numeric])
    metrics["numeric/within_25_percent"] = _rate([s.within_quarter for s in numeric])
    errors = [s.relative_error for s in numeric if s.relative_error is not None]
    metrics["numeric/abs_rel"] = float(np.mean(errors)) if errors else float("nan")
    answered = [s for s in report.scored if not s.missing]
    metrics["parse_failure_rate"] = _rate([s.parse_failed for s in answered])
    metrics["missing_rate"] = _rate([s.missing for s in report.scored])
    vsibench = [s for s in report.scored if s.vsibench]
    metrics["vsibench/questions"] = float(len(vsibench))
    metrics.update({f"vsibench/{name}": score for name, score in vsibench_scores(report.task_scores(vsibench)).items()})
    return metrics
