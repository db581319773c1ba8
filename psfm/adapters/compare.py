"""``psfm adapt compare=RUN,RUN,...``: finished arms side by side, as markdown + a PNG bar chart.

Reads each run's ``metrics.json`` and ``adapt.json``; checks that the arms were trained alike (same
steps, batch, language model, questions), and states the experiment's goal: the PSFM arm beats the
no-adapter and random-init arms by >= 5 points on multi-view questions.
"""

from __future__ import annotations

import json
from pathlib import Path

from psfm.errors import MissingPathError, UsageError
from psfm.io import atomic_write_bytes, atomic_write_json

GROUPS = (("multi-view", "multi/"), ("single-view", "single/"), ("all", ""))
SAME = ("steps", "batch_size", "llm", "llm_mode", "train", "val", "max_train_scenes", "max_eval_scenes", "seed")
GOAL_POINTS = 5.0


def read_arm(run: str | Path) -> tuple[dict, dict]:
    run = Path(run)
    paths = [run / "metrics.json", run / "adapt.json"]
    for path in paths:
        if not path.is_file():
            raise MissingPathError(f"{path}: not a finished `psfm adapt` run (no {path.name})")
    return json.loads(paths[0].read_text()), json.loads(paths[1].read_text())


def compare_arms(runs: list[str], names: list[str] | None, out: str | Path) -> Path:
    """Write ``out/adapt_report.md``, ``adapt_report.json`` and ``adapt_arms.png``; returns the markdown's path."""
    if names and len(names) != len(runs):
        raise UsageError(f"{len(names)} names for {len(runs)} runs")
    names = names or [Path(run).name for run in runs]
    arms = {name: read_arm(run) for name, run in zip(names, runs, strict=True)}
    differences = _differences(arms)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = {
        name: {label: _score(metrics, prefix) for label, prefix in GROUPS if f"{prefix}overall" in metrics}
        | {key: record["timings"].get(key, float("nan")) for key in ("train_s_per_sample", "train_s")}
        for name, (metrics, record) in arms.items()
    }
    tasks = sorted({key[5:] for metrics, _ in arms.values() for key in metrics if is_task(key)})
    lines = ["# psfm adapt: arms compared", "", "Score (%) with 95 % bootstrap intervals over scenes.", ""]
    header = "| arm | encoder | " + " | ".join(label for label, _ in GROUPS) + " | train s/sample | train s |"
    lines += [header, "|" + "---|" * (len(GROUPS) + 4)]
    for name, (_, record) in arms.items():
        cells = [_cell(table[name].get(label)) for label, _ in GROUPS]
        command = record["command"]
        encoder = "none" if command["export"] is None else f"{command['encoder']} `{command['export']}`"
        timing = f"{table[name]['train_s_per_sample']:.2f} | {table[name]['train_s']:.0f}"
        lines.append(f"| {name} | {encoder} | " + " | ".join(cells) + f" | {timing} |")
    lines += ["", "| task | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for task in tasks:
        row = [
            f"{100 * metrics[f'task/{task}']:.1f}" if f"task/{task}" in metrics else "-" for metrics, _ in arms.values()
        ]
        lines.append(f"| {task} | " + " | ".join(row) + " |")
    lines += ["", *_goal(table), ""]
    if differences:
        lines += ["**The arms were not trained alike:** " + "; ".join(differences), ""]
    figure = _bar_chart(table, out / "adapt_arms.png")
    lines += [f"![scores per arm]({figure.name})", ""]
    atomic_write_json(
        out / "adapt_report.json",
        {"arms": table, "differences": differences, "runs": dict(zip(names, runs, strict=True))},
    )
    path = out / "adapt_report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def is_task(key: str) -> bool:
    """``task/<name>`` itself, not its interval, count or baselines."""
    return key.startswith("task/") and not key.endswith(("_ci_low", "_ci_high", "_count", "_chance", "_frequency"))


def _score(metrics: dict, prefix: str) -> dict:
    return {
        "score": 100 * metrics[f"{prefix}overall"],
        "low": 100 * metrics[f"{prefix}overall_ci_low"],
        "high": 100 * metrics[f"{prefix}overall_ci_high"],
        "n": int(metrics[f"{prefix}questions"]),
    }


def _cell(score: dict | None) -> str:
    return "-" if score is None else f"{score['score']:.1f} ({score['low']:.1f}-{score['high']:.1f})"


def _differences(arms: dict[str, tuple[dict, dict]]) -> list[str]:
    commands = {name: record["command"] for name, (_, record) in arms.items()}
    first = next(iter(commands.values()))
    return [
        f"{key}: " + ", ".join(f"{name}={command.get(key)}" for name, command in commands.items())
        for key in SAME
        if len({json.dumps(command.get(key)) for command in commands.values()}) > 1 and key in first
    ]


def _goal(table: dict[str, dict]) -> list[str]:
    """The goal line when the arms are named as in the issue (psfm, none, random_init)."""
    needed = ("psfm", "none", "random_init")
    if not all(name in table and "multi-view" in table[name] for name in needed):
        return [
            f"(name the arms {', '.join(needed)} to check the goal: psfm beats both by >= {GOAL_POINTS:.0f} points)"
        ]
    psfm = table["psfm"]["multi-view"]["score"]
    gaps = {name: psfm - table[name]["multi-view"]["score"] for name in needed[1:]}
    met = all(gap >= GOAL_POINTS for gap in gaps.values())
    listed = ", ".join(f"{gap:+.1f} points over {name}" for name, gap in gaps.items())
    verdict = "met" if met else "not met"
    return [f"Goal (multi-view, psfm >= {GOAL_POINTS:.0f} points over none and random_init): {verdict}: {listed}."]


def _bar_chart(table: dict[str, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [label for label, _ in GROUPS]
    names = list(table)
    width = 0.8 / max(1, len(names))
    figure, axis = plt.subplots(figsize=(1.8 + 1.6 * len(labels), 4.0))
    for index, name in enumerate(names):
        scores = [table[name].get(label, {}).get("score", np.nan) for label in labels]
        low = [s - table[name].get(label, {}).get("low", s) for s, label in zip(scores, labels, strict=True)]
        high = [table[name].get(label, {}).get("high", s) - s for s, label in zip(scores, labels, strict=True)]
        positions = np.arange(len(labels)) + (index - (len(names) - 1) / 2) * width
        axis.bar(positions, scores, width, yerr=[low, high], capsize=3, label=name)
    axis.set_xticks(np.arange(len(labels)), labels)
    axis.set_ylabel("score (%)")
    axis.set_title("psfm adapt: held-out spatial QA per arm (95 % CI)")
    axis.legend(fontsize=8, ncol=len(names), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    figure.tight_layout()
    temporary = path.with_suffix(".tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(path)
    return path
