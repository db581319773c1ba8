"""The report: trained against random-init ratios, the full table, skipped probes and notes."""

from __future__ import annotations

import json

from psfm.probes.report import as_json, fusion, headline, markdown, write_report
from psfm.probes.results import ProbeScore, fit_record
from psfm.probes.run import ProbeReport, score_table


def report() -> ProbeReport:
    def scores(depth: float, top1: float) -> list[ProbeScore]:
        return [
            ProbeScore("view_depth/linear", "AbsRel", [depth], ci=(depth - 0.1, depth + 0.1)),
            ProbeScore("view_invariance/retrieval", "top-1", [top1], lower_is_better=False),
        ]

    by_source = {"mine": scores(0.2, 0.5), "random_init": scores(0.4, 0.0), "train_mean": scores(0.5, 0.125)}
    return ProbeReport(
        list(by_source), by_source, {"floor_area": "room.floor_area is missing"}, ["val: scenes left out: {}"], 1.0
    )


def test_headline_is_the_first_source_over_its_random_init_twin():
    rows = headline(report())
    assert rows == [("view_depth/linear", "AbsRel", 0.2, 0.4, 0.5)]  # top-1 of 0 for random init: no ratio


def test_table_markdown_and_json(tmp_path):
    header, rows = score_table(report())
    assert header == ["probe · metric", "mine", "random_init", "train_mean"]
    assert rows[0] == [
        "view_depth/linear · AbsRel ↓",
        "0.200 [0.100, 0.300]",
        "0.400 [0.300, 0.500]",
        "0.500 [0.400, 0.600]",
    ]
    assert rows[1][0] == "view_invariance/retrieval · top-1 ↑"
    text = markdown(report(), [])
    assert "| view_depth/linear · AbsRel | 0.200 | 0.400 | 0.50× |" in text
    assert "- `floor_area`: room.floor_area is missing" in text and "## Notes" in text and "## Figures" not in text
    record = as_json(report())
    assert record["versus_random_init"] == [
        {"probe": "view_depth/linear", "metric": "AbsRel", "trained": 0.2, "random_init": 0.4, "ratio": 0.5}
    ]
    path = write_report(report(), tmp_path / "out", figures=False)
    assert path.name == "probe_report.md" and sorted(p.name for p in path.parent.iterdir()) == [
        "probe_report.json",
        "probe_report.md",
    ]
    assert json.loads((path.parent / "probe_report.json").read_text("utf-8")) == json.loads(json.dumps(record))


def test_fusion_is_the_rise_from_every_context_view_to_the_reference_view_alone():
    def scores(full: float, alone: float | None) -> list[ProbeScore]:
        out = [ProbeScore("target_depth/ray_decoder", "AbsRel", [full])]
        return out + ([ProbeScore("target_depth/reference_alone", "AbsRel", [alone])] if alone else [])

    by_source = {"mine": scores(0.10, 0.12), "random_init": scores(0.20, 0.21), "train_mean": scores(0.3, None)}
    probed = ProbeReport(list(by_source), by_source, {}, [], 1.0)
    rows = fusion(probed)
    assert [row[0] for row in rows] == ["mine", "random_init"]  # no reference-alone score: no row
    assert rows[0][1:3] == (0.10, 0.12) and abs(rows[0][3] - 0.2) < 1e-9
    text = markdown(probed, [])
    assert "## What the other context views add" in text and "| mine | 0.100 | 0.120 | +20.0% |" in text
    assert as_json(probed)["reference_alone"][1]["source"] == "random_init"
    assert "What the other context views add" not in markdown(report(), [])


def test_convergence_table_tells_a_fit_still_learning_from_one_that_overfit():
    """Still learning: the best at the last check and a large second-half fall. Overfit: the best early, 0 %."""
    learning = [(100, 1.0), (200, 0.8), (300, 0.6), (400, 0.5)]  # best in the first half 0.8, at the end 0.5
    overfit = [(100, 0.9), (200, 0.7), (300, 0.8), (400, 1.0)]
    by_source = {
        name: [ProbeScore("facts/attentive", "MAE", [1.0], extra=fit_record("facts/attentive", [curve]))]
        for name, curve in (("mine", learning), ("random_init", overfit))
    }
    text = markdown(ProbeReport(list(by_source), by_source, {}, [], 1.0), [])
    assert "| facts/attentive | −37.5% (best at 400 of 400) | 0.0% (best at 200 of 400) |" in text
    fits = as_json(ProbeReport(list(by_source), by_source, {}, [], 1.0))["fits"]
    assert [(row["source"], row["second_half_gain"]) for row in fits] == [("mine", [0.375]), ("random_init", [0.0])]
