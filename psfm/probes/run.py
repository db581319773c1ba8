"""``run_probes(config) -> report``: every probe on every source, one table; called by ``psfm probe`` and tests.

Sources, in the table's column order: each export given (named by ``names``), then the baselines
of the *first* export: its random-init twin (same architecture, seeded init; a frozen backbone
keeps its weights), its backbone alone (mean-pooled per-view tokens), a non-learned thumbnail,
and the constant floor (train mean / chance, through the very same probe code).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from psfm.export import load, random_init_twin
from psfm.probes import depth, facts, objects, pose, retrieval, targets
from psfm.probes.results import ProbeScore
from psfm.probes.scenes import ProbeScenes, load_probe_scenes
from psfm.probes.sources import BackboneMeanSource, ConstantSource, EncoderSource, ThumbnailSource

log = logging.getLogger("psfm.probe")

PROBES = ("facts", "objects", "view_depth", "target_depth", "relative_pose", "view_invariance")
BASELINES = ("random_init", "backbone_mean", "thumbnail", "train_mean")
TRAIN_FREE = {"view_invariance"}  # probes with nothing to fit: a run of only these never loads the train scenes
FACTS = tuple(targets.FACT_BUILDERS)


@dataclass
class ProbeCommand:
    """Schema of ``configs/probe.yaml`` (every key is documented there and in ``psfm probe --help``)."""

    export: str = "outputs/pretrain/world_tiny/export"
    names: str | None = None
    train: str = "data/world_probe/train"
    val: str = "data/world_probe/val"
    out: str = "outputs/probe"
    context_views: int = 3
    probe_views: int = 8
    max_train_scenes: int | None = None
    max_val_scenes: int | None = None
    seeds: int = 3
    first_seed: int = 0  # learned probes use seeds first_seed .. first_seed + seeds - 1: add seeds to an earlier run
    steps: int = 600
    target_depth_units: str = "metric"  # or normalized: see psfm.probes.depth.target_depth
    probes: list[str] = field(default_factory=lambda: [p for p in PROBES if p != "objects"])  # objects: opt-in
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    facts: list[str] = field(default_factory=lambda: list(FACTS))
    random_init_seed: int = 0
    figures: bool = True
    progress: bool = True


@dataclass
class ProbeReport:
    """Scores by source, skipped probes with their reasons, notes a reader needs, and what figures need."""

    sources: list[str]
    scores: dict[str, list[ProbeScore]]
    skipped: dict[str, str]
    notes: list[str]
    seconds: float
    figure_data: dict = field(default_factory=dict)


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def build_sources(command: ProbeCommand) -> dict[str, object]:
    exports = split_list(command.export)
    if not exports:
        raise ValueError("probe: export= names no export folder")
    names = split_list(command.names) or [Path(path).parent.name or Path(path).name for path in exports]
    if len(names) != len(exports):
        raise ValueError(f"probe: {len(exports)} export(s) but {len(names)} name(s) in names={command.names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"probe: names must differ, got {names} (pass names=a,b,...)")
    unknown = set(command.baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"probe: unknown baseline(s) {sorted(unknown)}; known: {list(BASELINES)}")
    sources: dict[str, object] = {name: EncoderSource(load(path)) for name, path in zip(names, exports, strict=True)}
    first = sources[names[0]]
    patch_size = first.spatial.backbone.patch_size
    if "random_init" in command.baselines:
        sources["random_init"] = EncoderSource(random_init_twin(exports[0], command.random_init_seed))
    if "backbone_mean" in command.baselines:
        sources["backbone_mean"] = BackboneMeanSource(first.spatial, first.image_size, input_kind=first.input_kind)
    if "thumbnail" in command.baselines:
        sources["thumbnail"] = ThumbnailSource(first.image_size, patch_size, first.input_kind)
    if "train_mean" in command.baselines:
        sources["train_mean"] = ConstantSource(first.image_size, patch_size)
    return sources


MAKE_PROBE_WORLD = "psfm world out=data/world_probe scenes.train=2048 scenes.val=256 world.seed=1"


def needs_train(command: ProbeCommand) -> bool:
    """Whether any requested probe fits on train scenes (retrieval fits nothing: it reads held-out scenes only)."""
    return not set(command.probes) <= TRAIN_FREE


def check_sources(command: ProbeCommand) -> None:
    """Fail before any work when a shard source is missing, saying how to make the default one."""
    for split in ("train", "val") if needs_train(command) else ("val",):
        source = str(getattr(command, split))
        plain_path = "://" not in source and not source.startswith("pipe:") and not any(c in source for c in "*{:")
        if plain_path and not Path(source).exists():
            hint = f"; make it with: {MAKE_PROBE_WORLD}" if "world_probe" in source else ""
            raise FileNotFoundError(f"{split}={source} does not exist{hint}")


def run_probes(command: ProbeCommand) -> ProbeReport:
    unknown = set(command.probes) - set(PROBES)
    if unknown:
        raise ValueError(f"probe: unknown probe(s) {sorted(unknown)}; known: {list(PROBES)}")
    if command.target_depth_units not in depth.TARGET_DEPTH_UNITS:
        raise ValueError(
            f"probe: target_depth_units={command.target_depth_units!r}; use one of {depth.TARGET_DEPTH_UNITS}"
        )
    if command.seeds < 1 or command.first_seed < 0:
        raise ValueError(
            f"probe: seeds={command.seeds}, first_seed={command.first_seed}; need seeds >= 1 and first_seed >= 0"
        )
    check_sources(command)
    start = time.perf_counter()
    sources = build_sources(command)
    seeds = list(range(command.first_seed, command.first_seed + command.seeds))
    scenes: dict[tuple[int, int], tuple[ProbeScenes, ProbeScenes]] = {}
    notes, skipped = [], {}
    scores: dict[str, list[ProbeScore]] = {name: [] for name in sources}
    figure_data: dict = {"features": {}, "scores": scores}
    for name, source in sources.items():
        size = tuple(source.image_size)
        if size not in scenes:
            options = {"num_context": command.context_views, "num_views": command.probe_views}
            train = (
                load_probe_scenes(
                    command.train, size, **options, max_scenes=command.max_train_scenes, progress=command.progress
                )
                if needs_train(command)
                else None
            )
            val = load_probe_scenes(
                command.val, size, **options, max_scenes=command.max_val_scenes, progress=command.progress
            )
            scenes[size] = (train, val)
            for split, loaded in (("train", train), ("val", val)):
                if loaded is None:
                    continue
                if loaded.stored_size and loaded.stored_size != size:
                    notes.append(
                        f"{split} views are stored at {loaded.stored_size[0]}x{loaded.stored_size[1]} and were fitted "
                        f"to {size[0]}x{size[1]} as the training loader does (resize to cover, centre crop)"
                    )
                if loaded.skipped:
                    notes.append(f"{split}: scenes left out: {loaded.skipped}")
        train, val = scenes[size]
        figure_data.setdefault("scenes", val)
        log.info("probe: %s features", name)
        train_features = source.features(train, frame_aware=False) if train is not None else None
        val_features = source.features(val)
        figure_data["features"][name] = val_features
        scores[name] = _probe_source(command, train_features, val_features, train, val, seeds, skipped, name)
    return ProbeReport(list(sources), scores, skipped, sorted(set(notes)), time.perf_counter() - start, figure_data)


@contextmanager
def _stage(source: str, probe: str, seeds: int):
    """One log line when a probe starts and one with its time when it ends: probing a source takes minutes."""
    log.info("probe: %s · %s (%d seed%s) ...", source, probe, seeds, "" if seeds == 1 else "s")
    start = time.perf_counter()
    yield
    log.info("probe: %s · %s done in %.0f s", source, probe, time.perf_counter() - start)


def _probe_source(command, train_features, val_features, train, val, seeds, skipped, source="") -> list[ProbeScore]:
    out: list[ProbeScore] = []
    if "facts" in command.probes:
        with _stage(source, "facts", len(seeds)):
            out += _fact_probes(command, train_features, val_features, train, val, seeds, skipped)
    if "objects" in command.probes:
        with _stage(source, "objects", len(seeds)):
            try:
                out += objects.object_probes(train_features, val_features, train, val, seeds, 3 * command.steps)
            except targets.MissingAnnotation as error:
                skipped["objects"] = str(error)
    has_depth = train is not None and train.depth is not None and val.depth is not None
    for probe in ("view_depth", "target_depth"):
        if probe in command.probes and not has_depth:
            skipped[probe] = "the shards have no depth maps (views[i].depth is missing)"
    if "view_depth" in command.probes and has_depth:
        with _stage(source, "view_depth", 1):
            out += depth.view_depth(train_features, val_features, train, val)
    if "target_depth" in command.probes and has_depth:
        with _stage(source, "target_depth", len(seeds)):
            out += depth.target_depth(
                train_features, val_features, train, val, seeds, command.steps, command.target_depth_units
            )
    if "relative_pose" in command.probes:
        with _stage(source, "relative_pose", len(seeds)):
            out += pose.relative_pose_probe(train_features, val_features, train, val, seeds, command.steps)
    if "view_invariance" in command.probes:
        out += retrieval.view_invariance(val_features)
    return out


def _fact_probes(command, train_features, val_features, train, val, seeds, skipped) -> list[ProbeScore]:
    """Each fact by ridge on pooled tokens, then every fact at once by the attentive probe."""
    out: list[ProbeScore] = []
    categories = targets.categories_of(train)
    train_facts, val_facts = [], []
    for fact_name in command.facts:
        try:
            fact_train = targets.build_fact(fact_name, train, categories)
            fact_val = targets.build_fact(fact_name, val, categories)
        except targets.MissingAnnotation as error:
            skipped[fact_name] = str(error)
            continue
        train_facts.append(fact_train)
        val_facts.append(fact_val)
        out.append(facts.pooled_linear(train_features, val_features, fact_train, fact_val))
    if train_facts:
        out += facts.attentive(train_features, val_features, train_facts, val_facts, seeds, command.steps)
    return out


def score_table(report: ProbeReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows (probe · metric, then one cell per source) of the report's main table."""
    keys: list[tuple[str, str]] = []
    for source_scores in report.scores.values():
        for score in source_scores:
            if (score.probe, score.metric) not in keys:
                keys.append((score.probe, score.metric))
    rows = []
    for probe, metric in keys:
        cells = []
        for name in report.sources:
            match = [s for s in report.scores[name] if (s.probe, s.metric) == (probe, metric)]
            cells.append(match[0].text() if match else "–")
        arrow = "↓" if _direction(report, probe, metric) else "↑"
        rows.append([f"{probe} · {metric} {arrow}", *cells])
    return ["probe · metric", *report.sources], rows


def _direction(report: ProbeReport, probe: str, metric: str) -> bool:
    for source_scores in report.scores.values():
        for score in source_scores:
            if (score.probe, score.metric) == (probe, metric):
                return score.lower_is_better
    return True


def find_score(report: ProbeReport, source: str, probe: str, metric: str) -> ProbeScore | None:
    return next((s for s in report.scores.get(source, []) if (s.probe, s.metric) == (probe, metric)), None)
