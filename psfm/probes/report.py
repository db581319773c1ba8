"""Write a probe run for people: ``probe_report.md``, ``probe_report.json`` and PNG figures.

The markdown leads with the comparison that matters (the first encoder against its random-init
twin, as error ratios), then the full table, then the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from psfm.io import atomic_open, atomic_write_bytes
from psfm.probes.models import PATIENCE, second_half_gain
from psfm.probes.run import ProbeReport, find_score, score_table
from psfm.probes.targets import patch_depth_median

# (probe, metric) pairs compared as trained / random-init; the goals: errors <= 0.8x, top-1 >= 2x
HEADLINE = (
    ("view_depth/linear", "AbsRel"),
    ("target_depth/ray_decoder", "AbsRel"),
    ("floor_area/attentive", "MAE (m²)"),
    ("floor_area/linear", "MAE (m²)"),
    ("object_count/attentive", "MAE (objects)"),
    ("seen_object_count/attentive", "MAE (objects)"),
    ("room_height/attentive", "MAE (m)"),
    ("camera_extent/attentive", "MAE (m)"),
    ("relative_pose/attentive", "rotation error (°)"),
    ("view_invariance/retrieval", "top-1"),
    ("view_invariance/shared_reference", "top-1"),
    ("view_invariance/moved_reference", "top-1"),
)


def headline(report: ProbeReport, baseline: str = "random_init") -> list[tuple[str, str, float, float, float]]:
    """(probe, metric, first source's mean, baseline's mean, ratio) for each ``HEADLINE`` pair both have."""
    first = report.sources[0]
    rows = []
    for probe, metric in HEADLINE:
        mine, theirs = find_score(report, first, probe, metric), find_score(report, baseline, probe, metric)
        if mine and theirs and theirs.mean:
            rows.append((probe, metric, mine.mean, theirs.mean, mine.mean / theirs.mean))
    return rows


def fusion(report: ProbeReport) -> list[tuple[str, float, float, float]]:
    """(source, unseen-view depth AbsRel from every context view, from the reference view alone, rise).

    The rise is what a source's other context views add to its picture of unseen views: near 0 for
    a representation of its reference view alone (``target_depth/reference_alone``).
    """
    rows = []
    for name in report.sources:
        full = find_score(report, name, "target_depth/ray_decoder", "AbsRel")
        alone = find_score(report, name, "target_depth/reference_alone", "AbsRel")
        if full and alone and full.mean:
            rows.append((name, full.mean, alone.mean, alone.mean / full.mean - 1))
    return rows


def fitting(report: ProbeReport) -> list[tuple[str, dict[str, list[list[tuple[int, float]]]]]]:
    """(fitted probe, {source: holdout curve per seed}) for every learned probe, in report order.

    A curve says whether a fit had converged (``second_half_gain``): a source whose probe was still
    learning at the end is under-read by this ``steps``, and a ratio against a source whose probe had
    converged is then not a fair one. A best early and a rise after it is the probe overfitting.
    """
    curves: dict[str, dict[str, list]] = {}
    for name in report.sources:
        for score in report.scores[name]:
            if "holdout_curves" in score.extra:
                curves.setdefault(score.extra["fitted"], {})[name] = score.extra["holdout_curves"]
    return list(curves.items())


def markdown(report: ProbeReport, figures: list[str]) -> str:
    header, rows = score_table(report)
    lines = [
        "# psfm probe report",
        "",
        f"Sources: {', '.join(f'`{name}`' for name in report.sources)}. Probes are fit on the train scenes and "
        "scored on held-out scenes. Learned probes: mean ± standard deviation over probe seeds; closed-form "
        "probes: mean [95 % bootstrap interval over scenes]. ↓ lower is better, ↑ higher is better. "
        "`train_mean` is the floor: constant features, so every probe can only learn the train mean "
        "(for retrieval: chance; for target depth: the rays alone).",
        "",
    ]
    ratios = headline(report)
    if ratios:
        lines += [
            f"## `{report.sources[0]}` against its random-init twin",
            "",
            "| probe · metric | trained | random init | ratio |",
            "|---|---|---|---|",
        ]
        lines += [f"| {p} · {m} | {a:.3f} | {b:.3f} | {r:.2f}× |" for p, m, a, b, r in ratios]
        lines.append("")
    fused = fusion(report)
    if fused:
        lines += [
            "## What the other context views add",
            "",
            "Unseen-view depth read by the same fitted probe from every context view, then from the "
            "reference view alone: a representation that fuses its views loses more without the others.",
            "",
            "| source | every context view | reference view alone | rise |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {full:.3f} | {alone:.3f} | {rise:+.1%} |" for name, full, alone, rise in fused]
        lines.append("")
    lines += ["## All probes", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    fits = fitting(report)
    if fits:
        lines += [
            "",
            "## Did the learned probes converge?",
            "",
            "How much lower the holdout loss (train scenes kept aside) ended than its best in the first half of "
            "the fit (mean over seeds), and the step of the best (first seed), whose weights are kept: near 0 % "
            "the probe had converged (a best early means it overfit after); a large fall with the best at "
            "the end means it was still learning, and more `steps` would read more from that source. "
            f'"of N" is the last step fitted: a fit stops once its holdout loss has not improved for {PATIENCE} '
            "steps, so N below `steps` means it stopped early.",
            "",
            "| fitted probe | " + " | ".join(report.sources) + " |",
            "|" + "---|" * (1 + len(report.sources)),
        ]
        for probe, by_source in fits:
            cells = [_convergence(by_source.get(name)) for name in report.sources]
            lines.append(f"| {probe} | " + " | ".join(cells) + " |")
    if report.skipped:
        lines += ["", "## Skipped", ""] + [f"- `{name}`: {why}" for name, why in report.skipped.items()]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    lines += ["", f"Run time: {report.seconds:.0f} s.", ""]
    return "\n".join(lines)


def _convergence(curves: list[list[tuple[int, float]]] | None) -> str:
    """``−12.0% (best at 2900 of 3000)``: the second-half gain and where the kept weights came from."""
    gains = [gain for gain in map(second_half_gain, curves or []) if gain == gain]
    if not gains:
        return "–"
    gain = sum(gains) / len(gains)
    best_step = min(curves[0], key=lambda point: point[1])[0]
    shown = f"−{gain:.1%}" if gain >= 0.0005 else "0.0%"  # 0: the best came in the first half
    return f"{shown} (best at {best_step} of {curves[0][-1][0]})"


def as_json(report: ProbeReport) -> dict:
    return {
        "sources": report.sources,
        "scores": {name: [score.to_json() for score in scores] for name, scores in report.scores.items()},
        "versus_random_init": [
            {"probe": p, "metric": m, "trained": a, "random_init": b, "ratio": r} for p, m, a, b, r in headline(report)
        ],
        "reference_alone": [
            {"source": name, "every_view": full, "reference_alone": alone, "rise": rise}
            for name, full, alone, rise in fusion(report)
        ],
        "fits": [
            {
                "probe": probe,
                "source": name,
                "second_half_gain": [second_half_gain(curve) for curve in curves],
                "holdout_curves": curves,
            }
            for probe, by_source in fitting(report)
            for name, curves in by_source.items()
        ],
        "skipped": report.skipped,
        "notes": report.notes,
        "seconds": report.seconds,
    }


def write_report(report: ProbeReport, out: str | Path, figures: bool = True) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = draw_figures(report, out) if figures else []
    atomic_write_bytes(out / "probe_report.json", json.dumps(as_json(report), indent=2).encode())
    atomic_write_bytes(out / "probe_report.md", markdown(report, written).encode())
    return out / "probe_report.md"


# figures ------------------------------------------------------------------------------------------
def _save(figure, path: Path) -> str:
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    return str(path)


def draw_figures(report: ProbeReport, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for draw in (_scatter, _depth_maps, _similarity, _pca_maps, _fit_curves):
        figure = draw(report, plt)
        if figure is not None:
            written.append(_save(figure, out / f"{draw.__name__.strip('_')}.png"))
            plt.close(figure)
    return written


def _scatter(report: ProbeReport, plt):
    """Predicted vs true scene facts on held-out scenes (attentive probe, first seed)."""
    scenes = report.figure_data.get("scenes")
    panels = []
    for name in report.sources:
        for score in report.scores[name]:
            if score.probe.endswith("/attentive") and "predicted" in score.extra and score.probe != "relative_pose":
                panels.append((name, score))
    facts = sorted({score.probe for _, score in panels})
    if not facts or scenes is None:
        return None
    from psfm.probes import targets

    figure, axes = plt.subplots(
        len(facts), len(report.sources), figsize=(2.6 * len(report.sources), 2.5 * len(facts)), squeeze=False
    )
    for row, probe in enumerate(facts):
        fact_name = probe.split("/")[0]
        try:
            truth = targets.build_fact(fact_name, scenes, targets.categories_of(scenes)).values[:, -1]
        except targets.MissingAnnotation:
            continue
        for col, name in enumerate(report.sources):
            axis = axes[row][col]
            score = next((s for n, s in panels if n == name and s.probe == probe), None)
            if score is None:
                axis.axis("off")
                continue
            predicted = score.extra["predicted"][:, -1]
            low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
            axis.plot([low, high], [low, high], color="0.7", lw=1)
            axis.scatter(truth, predicted, s=8)
            axis.set_title(f"{name}\n{fact_name}: MAE {score.mean:.2f}", fontsize=8)
            axis.tick_params(labelsize=7)
            if col == 0:
                axis.set_ylabel("predicted", fontsize=8)
            if row == len(facts) - 1:
                axis.set_xlabel("true", fontsize=8)
    figure.suptitle("Scene facts on held-out scenes (attentive probe)", fontsize=10)
    return figure


def _depth_maps(report: ProbeReport, plt):
    """Target view (never seen by the encoder), its true patch depth, and each source's prediction."""
    scenes = report.figure_data.get("scenes")
    predicted = {
        name: s.extra["predicted"]
        for name in report.sources
        for s in report.scores[name]
        if s.probe == "target_depth/ray_decoder" and "predicted" in s.extra
    }
    if scenes is None or scenes.depth is None or not predicted:
        return None
    grid = report.figure_data["features"][report.sources[0]].grid
    shown = min(4, len(scenes))
    columns = 2 + len(predicted)
    figure, axes = plt.subplots(shown, columns, figsize=(1.9 * columns, 1.9 * shown), squeeze=False)
    context = scenes.num_context
    for row in range(shown):
        truth = patch_depth_median(scenes.depth[row, context], grid).view(grid)
        vmin, vmax = float(truth.nan_to_num(1e9).min()), float(truth.nan_to_num(0).max())
        axes[row][0].imshow(scenes.images[row, context].permute(1, 2, 0).numpy())
        axes[row][1].imshow(truth.numpy(), vmin=vmin, vmax=vmax, cmap="magma_r")
        for col, (name, values) in enumerate(predicted.items(), start=2):
            own_grid = report.figure_data["features"][name].grid  # exports at another image size: another grid
            axes[row][col].imshow(values[row, 0].view(own_grid).numpy(), vmin=vmin, vmax=vmax, cmap="magma_r")
            if row == 0:
                axes[row][col].set_title(name, fontsize=8)
        if row == 0:
            axes[row][0].set_title("unseen target view", fontsize=8)
            axes[row][1].set_title("true depth", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("Depth of a view the encoder never saw, from its scene tokens + that view's rays", fontsize=9)
    return figure


def _similarity(report: ProbeReport, plt):
    """Cosine similarity of subset-A to subset-B descriptors: a bright diagonal is view invariance."""
    matrices = {
        name: s.extra["similarity"]
        for name in report.sources
        for s in report.scores[name]
        if "similarity" in s.extra and name != "train_mean"
    }
    if not matrices:
        return None
    figure, axes = plt.subplots(1, len(matrices), figsize=(2.8 * len(matrices), 2.9), squeeze=False)
    for axis, (name, matrix) in zip(axes[0], matrices.items(), strict=True):
        axis.imshow(matrix.numpy(), cmap="viridis")
        top1 = find_score(report, name, "view_invariance/retrieval", "top-1")
        axis.set_title(f"{name}\ntop-1 {top1.mean:.2f}" if top1 else name, fontsize=8)
        axis.set_xlabel("scene (views C..2C-1)", fontsize=7)
        axis.set_ylabel("scene (views 0..C-1)", fontsize=7)
        axis.tick_params(labelsize=6)
    figure.suptitle("View invariance: similarity of disjoint view subsets of held-out scenes", fontsize=9)
    return figure


def _pca_maps(report: ProbeReport, plt):
    """Per-view patch tokens projected on their first three principal components, as RGB."""
    scenes = report.figure_data.get("scenes")
    features = {name: f for name, f in report.figure_data["features"].items() if f.view_tokens.shape[-1] > 1}
    if scenes is None or not features:
        return None
    shown = min(3, scenes.num_context)
    figure, axes = plt.subplots(
        1 + len(features), shown, figsize=(1.9 * shown, 1.9 * (1 + len(features))), squeeze=False
    )
    for col in range(shown):
        axes[0][col].imshow(scenes.images[0, col].permute(1, 2, 0).numpy())
    for row, (name, feature) in enumerate(features.items(), start=1):
        tokens = feature.view_tokens[: min(64, len(feature.view_tokens))].flatten(0, 2).double()
        mean = tokens.mean(0)
        _, _, basis = torch.linalg.svd(tokens - mean, full_matrices=False)
        projected = (feature.view_tokens[0, :shown].double() - mean) @ basis[:3].T  # C N 3
        low, high = projected.flatten(0, 1).quantile(0.02, 0), projected.flatten(0, 1).quantile(0.98, 0)
        colours = ((projected - low) / (high - low).clamp_min(1e-9)).clamp(0, 1)
        for col in range(shown):
            axes[row][col].imshow(colours[col].view(*feature.grid, 3).numpy())
        axes[row][0].set_ylabel(name, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("Patch tokens of context views, first 3 principal components as RGB", fontsize=9)
    return figure


def _fit_curves(report: ProbeReport, plt):
    """Holdout loss of every learned probe while it was fitted (first seed), one line per source."""
    fits = fitting(report)
    if not fits:
        return None
    figure, axes = plt.subplots(1, len(fits), figsize=(3.2 * len(fits), 2.8), squeeze=False)
    for axis, (probe, by_source) in zip(axes[0], fits, strict=True):
        for name, curves in by_source.items():
            steps, losses = zip(*curves[0], strict=True)
            axis.plot(steps, losses, marker=".", label=name)
        if all(loss > 0 for line in axis.get_lines() for loss in line.get_ydata()):
            axis.set_yscale("log")
        axis.set_title(probe, fontsize=8)
        axis.set_xlabel("fitting step", fontsize=7)
        axis.set_ylabel("holdout loss", fontsize=7)
        axis.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    figure.suptitle(
        "Learned probes while fitting: still falling at the end means more steps would read more", fontsize=9
    )
    return figure
