"""Bootstrap confidence intervals over scenes.

Questions about one scene are correlated (same objects, same views), so resampling questions
would understate the uncertainty; whole scenes are resampled instead. Vectorized: per-scene,
per-task score sums and counts form [S, T] matrices, and each bootstrap replicate is a vector of
scene multiplicities.
"""

from __future__ import annotations

import numpy as np

from psfm.qa.scoring import ScoreReport


def bootstrap_intervals(
    report: ScoreReport, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """``{task: (low, high)}`` plus ``"overall"`` (unweighted mean of task scores) at ``level``."""
    if not report.scored or samples <= 0:
        return {}
    scenes = sorted({s.scene_id for s in report.scored})
    tasks = report.tasks()
    scene_index = {scene: i for i, scene in enumerate(scenes)}
    task_index = {task: j for j, task in enumerate(tasks)}
    sums = np.zeros((len(scenes), len(tasks)))
    counts = np.zeros((len(scenes), len(tasks)))
    for s in report.scored:
        sums[scene_index[s.scene_id], task_index[s.task]] += s.score
        counts[scene_index[s.scene_id], task_index[s.task]] += 1
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(scenes), np.full(len(scenes), 1 / len(scenes)), size=samples)  # [B, S]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ sums) / (weights @ counts)  # [B, T], nan where a replicate lacks the task
        overall = np.nanmean(means, axis=1)
    tail = 100 * (1 - level) / 2
    intervals = {}
    for task, j in task_index.items():
        column = means[:, j][np.isfinite(means[:, j])]
        intervals[task] = tuple(np.percentile(column, [tail, 100 - tail]).tolist()) if len(column) else (np.nan, np.nan)
    intervals["overall"] = tuple(np.percentile(overall, [tail, 100 - tail]).tolist())
    return intervals
