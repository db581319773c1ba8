"""``psfm probe`` end to end on a tiny world: every source scored on every probe, a report with figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from psfm.commands.probe import quote_lists, run
from psfm.export import export_encoder
from psfm.probes.models import PATIENCE
from psfm.probes.run import BASELINES, PROBES, ProbeCommand, build_sources, run_probes
from psfm.probes.scenes import load_probe_scenes
from psfm.probes.targets import floor_area
from psfm.training.config import BackboneConfig, EncoderConfig
from psfm.training.model import build_encoder
from psfm.worlds.generate import generate_world
from psfm.worlds.sampler import WorldConfig
from tests.conftest import write_synthetic_shards

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = {"seeds": 1, "steps": 20, "probe_views": 6, "context_views": 2, "progress": False}
EXPECTED_PROBES = {
    "floor_area/linear",
    "floor_area/attentive",
    "room_height/linear",
    "room_height/attentive",
    "object_count/linear",
    "object_count/attentive",
    "seen_object_count/linear",
    "seen_object_count/attentive",
    "camera_extent/linear",
    "camera_extent/attentive",
    "view_depth/linear",
    "target_depth/ray_decoder",
    "target_depth/reference_alone",
    "relative_pose/attentive",
    "view_invariance/retrieval",
    "view_invariance/shared_reference",
    "view_invariance/moved_reference",
}


def write_export(directory: Path, seed: int, size: int = 32, input_kind: str = "images") -> str:
    """A random-init tiny encoder (vit_test, patch 16: a 2 x 2 grid at 32 px) exported like a trained one."""
    backbone = BackboneConfig(name="vit_test", img_size=size, overrides={"depth": 1, "embed_dim": 32})
    encoder = EncoderConfig(dim=32, depth=1, num_heads=2, num_latents=4, num_registers=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_encoder(backbone, encoder)
        export_encoder(model, backbone, encoder, (size, size), directory, input_kind=input_kind)
    return str(directory)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("probe_run")
    config = WorldConfig(views_per_scene=8, height=32, width=32)
    generate_world(root / "world" / "train", config, 16, "train", 8, progress=False)
    generate_world(root / "world" / "val", config, 8, "val", 8, progress=False)
    return {
        "a": write_export(root / "a" / "export", seed=1),
        "b": write_export(root / "b" / "export", seed=2),
        "train": str(root / "world" / "train"),
        "val": str(root / "world" / "val"),
        "root": str(root),
    }


@pytest.fixture(scope="module")
def full_run(setup):
    out = Path(setup["root"]) / "out"
    report = run(ProbeCommand(export=setup["a"], train=setup["train"], val=setup["val"], out=str(out), **SMALL))
    return report, out


def test_every_source_has_a_finite_score_for_every_probe(full_run):
    report, _ = full_run
    assert report.sources == ["a", *BASELINES] and report.skipped == {} and report.notes == []
    for name in report.sources:
        assert {score.probe for score in report.scores[name]} == EXPECTED_PROBES, name
        assert all(math.isfinite(value) for score in report.scores[name] for value in score.values), name
    metrics = {name: [(s.probe, s.metric) for s in report.scores[name]] for name in report.sources}
    assert all(keys == metrics["a"] for keys in metrics.values())


def test_train_mean_is_the_floor(full_run, setup):
    """Constant features: retrieval scores exactly chance, the linear fact probe predicts the train mean."""
    report, _ = full_run
    scores = {(s.probe, s.metric): s for s in report.scores["train_mean"]}
    assert scores["view_invariance/retrieval", "top-1"].mean == pytest.approx(1 / 8)
    assert scores["view_invariance/retrieval", "top-5"].mean == pytest.approx(5 / 8)
    assert scores["view_invariance/shared_reference", "top-1"].mean == pytest.approx(1 / 8)
    assert scores["view_invariance/moved_reference", "top-1"].mean == pytest.approx(1 / 8)
    options = {"num_context": 2, "num_views": 6, "progress": False}
    train, val = (
        load_probe_scenes(setup["train"], (32, 32), **options),
        load_probe_scenes(setup["val"], (32, 32), **options),
    )
    truth, mean = floor_area(val).values, floor_area(train).values.mean()
    expected = (truth - mean).abs().mean().item()
    assert scores["floor_area/linear", "MAE (m²)"].mean == pytest.approx(expected, rel=1e-4)


def test_report_files_and_figures(full_run):
    report, out = full_run
    markdown = (out / "probe_report.md").read_text("utf-8")
    assert "## `a` against its random-init twin" in markdown and "## All probes" in markdown
    record = json.loads((out / "probe_report.json").read_text("utf-8"))
    assert record["sources"] == report.sources and set(record["scores"]) == set(report.sources)
    assert record["versus_random_init"] and all(row["random_init"] > 0 for row in record["versus_random_init"])
    probes = {row["probe"] for row in record["versus_random_init"]}
    assert {"view_depth/linear", "relative_pose/attentive", "view_invariance/retrieval"} <= probes
    fits = {(row["probe"], row["source"]) for row in record["fits"]}
    learned = {"facts/attentive", "target_depth/ray_decoder", "relative_pose/attentive"}
    assert fits == {(probe, name) for probe in learned for name in report.sources}
    assert all(len(row["holdout_curves"]) == len(row["second_half_gain"]) == 1 for row in record["fits"])
    assert "## Did the learned probes converge?" in markdown and "| facts/attentive |" in markdown
    assert f"has not improved for {PATIENCE} steps" in markdown  # the reader learns why a fit may end early
    for figure in ("scatter", "depth_maps", "similarity", "pca_maps", "fit_curves"):
        path = out / f"{figure}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC, figure
        assert f"({figure}.png)" in markdown


def test_two_exports_side_by_side(setup, tmp_path):
    both = f"{setup['a']},{setup['b']}"
    quick = {**SMALL, "probes": ["view_invariance"], "baselines": ["train_mean"], "figures": False}
    report = run(
        ProbeCommand(export=both, names="x,y", train=setup["train"], val=setup["val"], out=str(tmp_path), **quick)
    )
    assert report.sources == ["x", "y", "train_mean"]
    x, y = (next(s.extra["similarity"] for s in report.scores[name] if "similarity" in s.extra) for name in "xy")
    assert not torch.allclose(x, y)  # two different encoders, not one twice
    named = run_probes(ProbeCommand(export=both, train=setup["train"], val=setup["val"], out=str(tmp_path), **quick))
    assert named.sources == ["a", "b", "train_mean"]  # default names: the folder above each export


def test_each_probe_says_when_it_starts_and_how_long_it_took(setup, tmp_path, caplog):
    """Probing one source takes minutes on a CPU: the log must show which probe is running, not go quiet."""
    quick = {**SMALL, "steps": 2, "probes": ["facts", "target_depth"], "baselines": [], "figures": False}
    with caplog.at_level("INFO", logger="psfm.probe"):
        run_probes(
            ProbeCommand(export=str(setup["a"]), train=setup["train"], val=setup["val"], out=str(tmp_path), **quick)
        )
    lines = [record.getMessage() for record in caplog.records]
    for probe in ("facts", "target_depth"):
        assert any(line.startswith(f"probe: a · {probe} (") for line in lines), lines
        assert any(line.startswith(f"probe: a · {probe} done in") for line in lines), lines


def test_exports_at_different_image_sizes_side_by_side(setup, tmp_path):
    """A 64 px export next to a 32 px one: views refitted for it, and its 4 x 4 depth maps drawn on their own grid."""
    large = write_export(tmp_path / "large" / "export", seed=3, size=64)
    quick = {**SMALL, "steps": 5, "probes": ["target_depth"], "baselines": []}
    both = f"{setup['a']},{large}"
    report = run(ProbeCommand(export=both, train=setup["train"], val=setup["val"], out=str(tmp_path / "out"), **quick))
    assert report.sources == ["a", "large"]
    assert report.scores["large"][0].extra["predicted"].shape[-1] == 16  # scene, target view, 4 x 4 patches
    assert report.figure_data["scenes"].image_size == (32, 32)
    assert any("were fitted to 64x64" in note for note in report.notes)
    assert (tmp_path / "out" / "depth_maps.png").read_bytes()[:8] == PNG_MAGIC


def test_list_arguments_are_quoted_for_hydra():
    assert quote_lists(["export=a,b", "names=x,y", "seeds=2"]) == ["export='a,b'", "names='x,y'", "seeds=2"]
    assert quote_lists(["export=a", "export='a,b'", "probes=[facts,view_depth]"]) == [
        "export=a",
        "export='a,b'",
        "probes=[facts,view_depth]",
    ]


def test_shards_without_annotations_skip_the_facts_they_lack(setup, tmp_path):
    """Synthetic shards (16 px, no room, no objects): those facts are skipped by name, the rest still run."""
    write_synthetic_shards(tmp_path / "train", num_scenes=10, per_shard=5, num_views=6, size=16, seed=0)
    write_synthetic_shards(tmp_path / "val", num_scenes=6, per_shard=3, num_views=6, size=16, seed=1)
    command = ProbeCommand(
        export=setup["a"],
        train=str(tmp_path / "train"),
        val=str(tmp_path / "val"),
        out=str(tmp_path / "out"),
        baselines=["train_mean"],
        figures=False,
        **{**SMALL, "steps": 5},
    )
    report = run(command)
    assert set(report.skipped) == {"floor_area", "room_height", "object_count", "seen_object_count"}
    assert "room.floor_area" in report.skipped["floor_area"] and "scene_0000" in report.skipped["floor_area"]
    assert "room.size" in report.skipped["room_height"] and "objects" in report.skipped["object_count"]
    probes = {score.probe for score in report.scores["a"]}
    assert probes == {
        "camera_extent/linear",
        "camera_extent/attentive",
        "view_depth/linear",
        "target_depth/ray_decoder",
        "target_depth/reference_alone",
        "relative_pose/attentive",
        "view_invariance/retrieval",
        "view_invariance/shared_reference",
        "view_invariance/moved_reference",
    }
    assert any("stored at 16x16 and were fitted to 32x32" in note for note in report.notes)
    markdown = (tmp_path / "out" / "probe_report.md").read_text("utf-8")
    assert "## Skipped" in markdown and "room.floor_area" in markdown and "fitted to 32x32" in markdown


def test_wrong_arguments_are_refused_by_name(setup, tmp_path):
    data = {"train": setup["train"], "val": setup["val"], "out": str(tmp_path), **SMALL}
    with pytest.raises(ValueError, match=r"unknown probe\(s\) \['view_dpeth'\]"):
        run_probes(ProbeCommand(export=setup["a"], probes=["facts", "view_dpeth"], **data))
    with pytest.raises(ValueError, match=r"2 export\(s\) but 1 name\(s\)"):
        run_probes(ProbeCommand(export=f"{setup['a']},{setup['b']}", names="x", **data))
    with pytest.raises(ValueError, match="names must differ"):
        run_probes(ProbeCommand(export=f"{setup['a']},{setup['b']}", names="x,x", **data))
    with pytest.raises(ValueError, match=r"unknown baseline\(s\) \['thumbnails'\]"):
        run_probes(ProbeCommand(export=setup["a"], baselines=["thumbnails"], **data))
    with pytest.raises(FileNotFoundError, match=r"train=.*nowhere does not exist"):
        run_probes(ProbeCommand(export=setup["a"], **{**data, "train": str(tmp_path / "nowhere")}))
    with pytest.raises(FileNotFoundError, match="make it with: psfm world out=data/world_probe"):
        run_probes(ProbeCommand(export=setup["a"], **{**data, "val": str(tmp_path / "world_probe" / "val")}))
    with pytest.raises(ValueError, match="unknown fact 'volume'"):
        run_probes(ProbeCommand(export=setup["a"], probes=["facts"], baselines=[], facts=["volume"], **data))
    with pytest.raises(ValueError, match="target_depth_units='feet'"):
        run_probes(ProbeCommand(export=setup["a"], target_depth_units="feet", **data))
    with pytest.raises(ValueError, match="first_seed=-1"):
        run_probes(ProbeCommand(export=setup["a"], first_seed=-1, **data))


def test_first_seed_adds_seeds_to_an_earlier_run(setup, tmp_path):
    """``first_seed=1 seeds=1`` fits exactly the second seed of a ``seeds=2`` run, so seeds can be added later."""
    data = {"train": setup["train"], "val": setup["val"], "out": str(tmp_path), **SMALL}
    options = {"export": setup["a"], "probes": ["target_depth"], "baselines": []}

    def values(**seeds) -> list[float]:
        scores = run_probes(ProbeCommand(**options, **{**data, **seeds})).scores
        (score,) = [
            s for s in next(iter(scores.values())) if s.probe == "target_depth/ray_decoder" and s.metric == "AbsRel"
        ]
        return score.values

    both, second = values(seeds=2), values(seeds=1, first_seed=1)
    assert len(both) == 2 and second == [both[1]]
    assert both[0] != both[1]  # the seeds differ, so the match above is not a coincidence


def test_cli_help_lists_the_probes_and_takes_lists_of_exports(tmp_path):
    """``export=a,b`` is one list here, not a Hydra sweep: the help's resolved config shows it whole."""
    psfm = str(Path(sys.executable).parent / "psfm")
    command = [psfm, "probe", "export=a/export,b/export", "names=x,y", "--help"]
    helped = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "psfm probe" in helped.stdout and "Usage:" in helped.stdout
    assert all(probe in helped.stdout for probe in (*PROBES, *BASELINES))
    assert "export: a/export,b/export" in helped.stdout and "names: x,y" in helped.stdout


def test_every_source_of_a_depth_input_export_reads_depth(setup, tmp_path):
    """The twin, the backbone alone and the thumbnail see what the export sees, not the photos."""
    export = write_export(tmp_path / "depth" / "export", seed=3, input_kind="depth")
    command = ProbeCommand(export=export, train=setup["train"], val=setup["val"], out=str(tmp_path), **SMALL)
    sources = build_sources(replace(command, baselines=["random_init", "backbone_mean", "thumbnail", "train_mean"]))
    kinds = {name: getattr(source, "input_kind", None) for name, source in sources.items()}
    assert kinds == {"depth": "depth", "random_init": "depth", "backbone_mean": "depth", "thumbnail": "depth",
                     "train_mean": None}  # fmt: skip


def test_a_retrieval_only_run_never_reads_the_train_scenes(setup, tmp_path):
    """Retrieval fits nothing: a missing train source is no error, and the scores are those of a full run."""
    quick = {**SMALL, "probes": ["view_invariance"], "baselines": ["train_mean"], "figures": False}
    data = {"export": setup["a"], "val": setup["val"], "out": str(tmp_path), **quick}
    alone = run_probes(ProbeCommand(train=str(tmp_path / "missing"), **data))
    full = run_probes(ProbeCommand(train=setup["train"], **data))
    assert [(s.probe, s.metric, s.values) for s in alone.scores["a"]] == [
        (s.probe, s.metric, s.values) for s in full.scores["a"]
    ]
    with pytest.raises(FileNotFoundError, match="train="):
        run_probes(ProbeCommand(train=str(tmp_path / "missing"), **{**data, "probes": ["view_invariance", "facts"]}))
