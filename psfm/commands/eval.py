"""``psfm eval``: score model predictions on spatial questions (accuracy, MRA, baselines, bootstrap CIs)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from psfm.io import atomic_write_json
from psfm.qa.parsing import MODES
from psfm.qa.predictions import load_predictions, load_questions
from psfm.qa.scoring import score_all
from psfm.qa.summary import summarize
from psfm.typed_config import to_command

log = logging.getLogger("psfm.eval")


@dataclass
class EvalCommand:
    """Schema of ``configs/eval.yaml``; a misspelled key fails at compose time with its name."""

    predictions: str = MISSING  # JSONL: {"id": ..., "prediction": "..."} per line
    questions: str | None = None  # questions.jsonl from `psfm qa`; None: the prediction lines carry them
    parse: str = "vsi"  # vsi: VSI-Bench parity (first token) | lenient: first number / letter anywhere
    strict_mra: bool = False  # use < instead of VSI-Bench's <= in MRA
    bootstrap: int = 1000  # resamples of scenes for the confidence intervals (0 = none)
    seed: int = 0
    out: str | None = None  # also write the metrics as JSON here


ConfigStore.instance().store(name="eval_schema", node=EvalCommand)


def _percent(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _task_table(metrics: dict[str, float]) -> Table:
    names = sorted(key[len("task/") : -len("_count")] for key in metrics if key.endswith("_count") and "/" in key)
    names = [name for name in names if f"task/{name}" in metrics]
    table = Table(title="psfm eval: score per task (%): numbers by MRA, choices by accuracy")
    for column in ("task", "n", "score", "95% CI", "chance", "frequency"):
        table.add_column(column, justify="left" if column == "task" else "right")

    def row(label: str, prefix: str, count: float, chance: float, frequency: float) -> None:
        interval = f"{_percent(metrics[prefix + '_ci_low'])}-{_percent(metrics[prefix + '_ci_high'])}"
        table.add_row(
            label, str(int(count)), _percent(metrics[prefix]), interval, _percent(chance), _percent(frequency)
        )

    for name in names:
        prefix = f"task/{name}"
        row(name, prefix, metrics[f"{prefix}_count"], metrics[f"{prefix}_chance"], metrics[f"{prefix}_frequency"])
    table.add_section()
    row("overall (mean of tasks)", "overall", metrics["questions"], metrics["chance"], metrics["frequency"])
    return table


def _numeric_table(metrics: dict[str, float], problems: Counter) -> Table:
    table = Table(title="numeric answers and parsing", show_header=False)
    table.add_row("numeric questions", str(int(metrics["numeric/count"])))
    table.add_row("MRA (VSI-Bench)", _percent(metrics["numeric/mra"]))
    table.add_row("within [0.5x, 2x] (SpatialVLM)", _percent(metrics["numeric/within_factor_two"]))
    table.add_row("contains a number (SpatialVLM)", _percent(metrics["numeric/contains_number"]))
    table.add_row("within ±25 % (SpatialRGPT)", _percent(metrics["numeric/within_25_percent"]))
    abs_rel = metrics["numeric/abs_rel"]
    table.add_row("AbsRel (parsed answers)", "-" if math.isnan(abs_rel) else f"{abs_rel:.3f}")
    vsibench = (
        f"{_percent(metrics.get('vsibench/overall', math.nan))} over {int(metrics['vsibench/questions'])} questions"
    )
    table.add_row("VSI-Bench overall (its aggregation)", vsibench)
    table.add_row("parse failures (scored 0)", _percent(metrics["parse_failure_rate"]))
    table.add_row("missing predictions (scored 0)", _percent(metrics["missing_rate"]))
    table.add_row("problems", ", ".join(f"{k} x{v}" for k, v in sorted(problems.items())) or "none")
    return table


def run(cfg: DictConfig | EvalCommand) -> dict[str, float]:
    """Score ``predictions`` against ``questions``; returns the flat metrics dict (``psfm.qa.summary``)."""
    command: EvalCommand = to_command(cfg)
    if command.parse not in MODES:
        raise ValueError(f"parse={command.parse!r}; use one of {MODES}")
    problems: Counter = Counter()
    predictions, embedded = load_predictions(command.predictions, problems, with_questions=command.questions is None)
    questions = load_questions(command.questions, problems) if command.questions else embedded
    if not questions:
        raise ValueError(
            f"no questions to score: give questions=questions.jsonl (from `psfm qa`) or put each question's "
            f"record in its prediction line ({command.predictions})"
        )
    report = score_all(questions, predictions, command.parse, command.strict_mra)
    problems.update(report.problems)
    problems += Counter()
    metrics = summarize(report, questions, command.bootstrap, command.seed)
    metrics.update({f"problems/{k}": float(v) for k, v in problems.items()})
    console = Console()
    console.print(_task_table(metrics))
    console.print(_numeric_table(metrics, problems))
    if command.out:
        atomic_write_json(command.out, metrics)
        log.info("metrics written to %s", command.out)
    return metrics


@hydra.main(config_path="pkg://psfm.configs", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "predictions"):
        raise SystemExit('psfm eval: predictions=FILE is required (JSONL of {"id", "prediction"} lines; see --help)')
    try:
        run(cfg)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"psfm eval: {error}") from None
