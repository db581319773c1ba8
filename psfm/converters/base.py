"""What every converter shares: scene discovery -> per-scene frames -> views -> ``build_sample`` -> ``ShardWriter``.

A converter module only knows its format. It provides

* ``find_scenes(root) -> list[Path]``: the capture folders (or video files) under what the user typed;
* ``read_scene(path, options) -> Capture``: the frames a scene's metadata describes, cheap, no pixels
  (a video is the exception: its frames exist only once decoded, so it decodes and samples them itself);
* ``UNPOSED = True`` where its captures carry no poses, so ``pose_model=`` may predict them.

A format whose scenes are not one folder each (annotation files: one file may hold many scenes) provides
``keyed_scenes(root, options) -> [(item, key)]`` and ``build_scene(item, key, options) -> SceneResult``
instead; resuming, workers, writing and the report stay here (``psfm.converters.boxes``).

Everything else is here, the same for every format: stride and view limits, loading and undistorting
(``psfm.converters.frames``), skipping a bad frame or scene with a reason and a message naming the file,
fitting views to one size, poses for unposed captures from structure from motion (``psfm.converters.sfm``) or
the user's model (``psfm.converters.poses``), parallel workers, resuming from ``ShardWriter.done_keys``, and
the report.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from psfm.converters.frames import CaptureError, Frame, fit_to, limit_size, load_frame
from psfm.converters.options import SFM, ConvertOptions
from psfm.converters.poses import load_pose_model, predict_poses
from psfm.converters.sfm import import_pycolmap, keep_per_view, reconstruct, unregistered
from psfm.datamodules.format import ShardFormatError
from psfm.datamodules.sample import ShardSample, build_sample
from psfm.datamodules.writer import ShardWriter
from psfm.errors import MissingPathError, UsageError
from psfm.progress import track

log = logging.getLogger("psfm.convert")

# format name -> module with find_scenes(root) and read_scene(path, options)
CONVERTERS: dict[str, str] = {
    "transforms": "psfm.converters.transforms",
    "colmap": "psfm.converters.colmap",
    "scannet": "psfm.converters.scannet",
    "images": "psfm.converters.images",
    "video": "psfm.converters.video",
    "boxes": "psfm.converters.boxes",
}
MAX_LOGGED_PROBLEMS = 20


@dataclass
class Capture:
    """One scene as its format describes it: frames in temporal order plus what the poses are."""

    frames: list[Frame]
    pose_source: str  # gt | colmap | predicted | none
    metric_scale: str = "none"  # gt | sensor_depth | predicted | none
    source: dict[str, Any] = field(default_factory=dict)
    skipped: list[CaptureError] = field(default_factory=list)  # frames the metadata already rules out
    sampled: bool = False  # the format already applied stride and max_views (video: by time and sharpness)
    objects: list[dict[str, Any]] | None = None  # labels of the masks' instance ids (meta.json ``objects``)
    per_view: tuple[str, ...] = ()  # ``source`` keys holding one entry per view (cut with the views SfM drops)


@dataclass
class SceneResult:
    """What converting one scene gave: a sample or the reason there is none, and the frames it skipped."""

    key: str
    sample: ShardSample | None
    views: int = 0
    frame_problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    scene_problem: tuple[str, str] | None = None


@dataclass
class ConversionReport:
    """Counts a person reads at the end: scenes and views written, and every skip by reason."""

    directory: Path
    format: str
    scenes_found: int = 0
    written: int = 0
    already_done: int = 0
    views: int = 0
    skipped_scenes: Counter = field(default_factory=Counter)
    skipped_frames: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def seconds_per_100_views(self) -> float:
        return 100 * self.seconds / self.views if self.views else float("nan")


def natural_key(text: str) -> list:
    """Sort key putting ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"([0-9]+)", text)]


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files in ``folder`` whose suffix (any case) is one of ``suffixes``, in natural order; [] if no folder."""
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in suffixes]
    return sorted(found, key=lambda path: natural_key(path.name))


def converter(name: str):
    """The module of format ``name``; an unknown name is a usage error listing the known ones."""
    if name not in CONVERTERS:
        raise UsageError(f"format={name!r} is not a known capture format; use one of: {', '.join(CONVERTERS)}")
    return importlib.import_module(CONVERTERS[name])


def scene_key(root: Path, scene: Path) -> str:
    """A shard key from the scene's path under ``root`` (its own name when it is ``root``; a file's without suffix)."""
    relative = scene.name if scene == root else scene.relative_to(root).as_posix()
    if scene.is_file():
        relative = relative.removesuffix(scene.suffix)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", relative).strip("_") or "scene"


def select_frames(frames: list[Frame], options: ConvertOptions) -> list[Frame]:
    """Every ``stride``-th frame, at most ``max_views`` of them (0 = all)."""
    chosen = frames[:: options.stride]
    return chosen[: options.max_views] if options.max_views > 0 else chosen


def convert_scene(format_name: str, scene: Path, key: str, options: ConvertOptions) -> SceneResult:
    """Convert one scene folder; never raises for bad input, which comes back as problems with reasons."""
    module = converter(format_name)
    if hasattr(module, "build_scene"):
        return module.build_scene(scene, key, options)
    try:
        capture = module.read_scene(scene, options)
    except CaptureError as error:
        return SceneResult(key, None, scene_problem=(error.reason, str(error)))
    problems = [(error.reason, str(error)) for error in capture.skipped]
    views, names = [], []
    for frame in capture.frames if capture.sampled else select_frames(capture.frames, options):
        try:
            views.append(limit_size(load_frame(frame, options.distortion == "undistort"), options.max_side))
            names.append(frame.where)
        except CaptureError as error:
            problems.append((error.reason, str(error)))
    if not views:
        reason = f"{scene}: no usable frame ({len(capture.frames)} listed, {len(problems)} skipped)"
        return SceneResult(key, None, frame_problems=problems, scene_problem=("no_usable_frames", reason))
    size = views[0].image.shape[:2]
    views = [fit_to(view, size) for view in views]
    if options.pose_model == SFM:
        try:
            reconstruction = reconstruct(views, str(scene), options.sfm, sequential_capture=capture.sampled)
        except CaptureError as error:
            return SceneResult(key, None, frame_problems=problems, scene_problem=(error.reason, str(error)))
        problems += unregistered(reconstruction, names)
        views = reconstruction.views
        source = keep_per_view(capture.source, capture.per_view, reconstruction.registered)
        source |= {"intrinsics": "colmap", "sfm": reconstruction.source}
        capture = replace(capture, pose_source="colmap", metric_scale="none", source=source)
    elif options.pose_model:
        try:
            views, prediction = predict_poses(options.pose_model, views, str(scene))
        except CaptureError as error:
            return SceneResult(key, None, frame_problems=problems, scene_problem=(error.reason, str(error)))
        refined = {"intrinsics": "predicted"} if prediction.intrinsics is not None else {}
        source = {**capture.source, "pose_model": options.pose_model, **refined}
        metric_scale = "predicted" if prediction.metric_scale else "none"
        capture = replace(capture, pose_source="predicted", metric_scale=metric_scale, source=source)
    has_depth = all(view.depth is not None for view in views)
    has_masks = all(view.mask is not None for view in views)
    try:
        sample = build_sample(
            key,
            images=[view.image for view in views],
            intrinsics=[view.intrinsics for view in views],
            cam_to_world=None if capture.pose_source == "none" else [view.cam_to_world for view in views],
            pose_source=capture.pose_source,
            source={"kind": format_name, "path": str(scene), **capture.source},
            depths=[view.depth for view in views] if has_depth else None,
            masks=[view.mask for view in views] if has_masks else None,
            objects=capture.objects if has_masks else None,
            metric_scale=capture.metric_scale,
            image_format=options.image_format,
            jpeg_quality=options.jpeg_quality,
        )
    except ShardFormatError as error:  # a camera the format refuses (e.g. a principal point far outside)
        if options.pose_model:  # then the cameras are the model's
            message = f"{scene}: pose_model={options.pose_model} answered cameras the shard format refuses: {error}"
            return SceneResult(key, None, frame_problems=problems, scene_problem=("bad_pose_prediction", message))
        return SceneResult(key, None, frame_problems=problems, scene_problem=("invalid_scene", str(error)))
    return SceneResult(key, sample, len(views), problems)


def _work(task: tuple[str, Path, str, ConvertOptions]) -> SceneResult:
    return convert_scene(*task)


def find_scenes(format_name: str, root: str | Path, options: ConvertOptions | None = None) -> list[tuple[Path, str]]:
    """(scene folder, key) pairs under ``root``, sorted; refuses a missing root, no scenes, or two equal keys."""
    root = Path(root)
    if not root.exists():
        raise MissingPathError(f"input={root} does not exist")
    module = converter(format_name)
    if hasattr(module, "keyed_scenes"):
        keyed = module.keyed_scenes(root, options or ConvertOptions())
    else:
        keyed = [(scene, scene_key(root, scene)) for scene in module.find_scenes(root)]
    if not keyed:
        raise MissingPathError(f"input={root}: no {format_name} capture found there ({module.LOOKS_FOR})")
    seen: dict[str, Path] = {}
    for scene, key in keyed:
        if key in seen:
            raise UsageError(f"input={root}: scenes {seen[key]} and {scene} would share the shard key {key!r}")
        seen[key] = scene
    return keyed


def check_pose_model(format_name: str, spec: str) -> None:
    """Refuse ``pose_model=`` for a format with its own poses, and load it now: a bad spec is named before any work."""
    unposed = [name for name in CONVERTERS if getattr(converter(name), "UNPOSED", False)]
    if format_name not in unposed:
        formats = ", ".join(unposed)
        raise UsageError(f"pose_model={spec} is for unposed captures ({formats}); {format_name} brings its own poses")
    if spec == SFM:
        import_pycolmap()  # a missing pycolmap is named before any scene is read
    else:
        load_pose_model(spec)  # cached: worker processes fork with it loaded


def _record(report: ConversionReport, result: SceneResult) -> None:
    for _, message in result.frame_problems + ([result.scene_problem] if result.scene_problem else []):
        if len(report.problems) < MAX_LOGGED_PROBLEMS:
            log.warning("skipped: %s", message)
        report.problems.append(message)
    report.skipped_frames.update(reason for reason, _ in result.frame_problems)
    if result.scene_problem is not None:
        report.skipped_scenes[result.scene_problem[0]] += 1
    report.views += result.views


def convert(
    format_name: str,
    root: str | Path,
    out: str | Path,
    options: ConvertOptions | None = None,
    samples_per_shard: int = 16,
    workers: int = 1,
    progress: bool = True,
) -> ConversionReport:
    """Convert every scene of a ``format_name`` capture under ``root`` into shards in ``out``.

    Scenes already in ``out``'s manifest are skipped (re-running resumes); a bad frame or scene is skipped
    and reported, never written half: the writer only shows complete shards. Scenes are written in sorted
    order whatever ``workers`` is.
    """
    options = options or ConvertOptions()
    if options.pose_model:
        check_pose_model(format_name, options.pose_model)
    scenes = find_scenes(format_name, root, options)
    report = ConversionReport(Path(out), format_name, scenes_found=len(scenes))
    info = {"producer": "psfm.converters", "format": format_name}
    # options left unset (None) are left out, so folders written before such an option existed still resume
    shared = {name: value for name, value in asdict(options).items() if not isinstance(value, dict)}
    info |= {name: value for name, value in shared.items() if value is not None}
    # flat keys, so a refused resume names the one option that differs; other formats' options do not matter
    info |= {f"{format_name}.{name}": value for name, value in asdict(getattr(options, format_name)).items()}
    delegate = getattr(getattr(options, format_name), "frames_format", None)  # boxes: frames read by another format
    if delegate and getattr(options, format_name).frames:
        info |= {f"{delegate}.{name}": value for name, value in asdict(getattr(options, delegate)).items()}
    if options.pose_model == SFM:
        info |= {f"sfm.{name}": value for name, value in asdict(options.sfm).items()}
    start = time.perf_counter()
    with ShardWriter(out, samples_per_shard, info=info) as writer:
        tasks = [(format_name, scene, key, options) for scene, key in scenes if key not in writer.done_keys]
        report.already_done = len(scenes) - len(tasks)
        if report.already_done:
            log.info("%s: %d of %d scenes already written", out, report.already_done, len(scenes))
        pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 and len(tasks) > 1 else None
        try:
            results = pool.imap(_work, tasks) if pool else map(_work, tasks)
            for result in track(results, len(tasks), f"convert/{format_name}", "scenes", progress):
                _record(report, result)
                if result.sample is not None:
                    writer.write(result.sample)
                    report.written += 1
        finally:
            if pool is not None:
                pool.terminate()
    report.seconds = time.perf_counter() - start
    return report
