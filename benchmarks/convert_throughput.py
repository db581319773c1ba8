"""``psfm convert`` throughput: seconds per 100 views for each capture format, through the command users run.

Each format's input is first written from rendered world scenes (not timed) by the fixture writers of the converter
tests. Those writers exist only under ``tests/`` (``tests/converters/captures.py`` and the ``write_*`` functions of
``tests/converters/test_*.py``), so this script imports them from there instead of keeping a copy: run it from a
checkout with the dev extras installed. Then ``psfm.commands.convert.run(ConvertCommand(...))`` converts each input
into a fresh folder, timed around the call: scene discovery, reading and undistorting or resampling, JPEG shard
encoding, tar writing and the manifest.

Default sizes: 25 scenes x 4 views at 640x480 for every format (100 views each; four views a scene because the
ScanNet writer names four frames), and ``pose_model=sfm`` on 3 textured image folders x 10 views at 320x240 (30
views: structure from motion is the slow path; COLMAP's features and matches use every core, its mapper one
thread). "views skipped" is views given minus views written, with the converter's reasons; it is 0 except where a
format legitimately drops views (SfM: a view that does not register).

    python benchmarks/convert_throughput.py [--scenes 25] [--size 640x480] [--sfm-scenes 3] [--sfm-views 10]
        [--sfm-size 320x240] [--workers 1] [--formats transforms colmap-binary ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one process means one core, numpy included
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for tests.converters

import contextlib  # noqa: E402
import io  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import partial  # noqa: E402

from psfm.commands import convert  # noqa: E402
from psfm.converters.base import CONVERTERS, converter  # noqa: E402
from psfm.converters.sfm import import_pycolmap  # noqa: E402
from tests.converters.captures import RenderedScene, painted, rendered, save_png  # noqa: E402
from tests.converters.test_colmap import write_colmap  # noqa: E402
from tests.converters.test_scannet import FRAME_NAMES, write_scannet  # noqa: E402
from tests.converters.test_transforms import write_transforms  # noqa: E402
from tests.converters.test_video import write_video  # noqa: E402


def write_image_folder(folder: Path, scene: RenderedScene) -> Path:
    """The views as PNG files in a folder, as a phone or a photo walk leaves them (no poses, no intrinsics)."""
    for index, image in enumerate(scene.images):
        save_png(folder / f"IMG_{index}.png", image)
    return folder


def write_video_file(path: Path, scene: RenderedScene) -> Path:
    """The views as the frames of one MPEG-4 file (``path`` with ``.mp4``), as the video tests encode them."""
    return write_video(path.with_suffix(".mp4"), scene.images)


@dataclass(frozen=True)
class Case:
    """One row: a capture format, the writer laying scenes out in it, and whether SfM poses it."""

    name: str
    format: str
    write: Callable[[Path, RenderedScene], Path]
    pose_model: str | None = None


CASES = (
    Case("transforms", "transforms", write_transforms),
    Case("colmap-binary", "colmap", partial(write_colmap, binary=True)),
    Case("colmap-text", "colmap", partial(write_colmap, binary=False)),
    Case("scannet", "scannet", write_scannet),  # depth at half resolution, instance masks + aggregation
    Case("images", "images", write_image_folder),
    Case("video", "video", write_video_file),
    Case("images+sfm", "images", write_image_folder, pose_model="sfm"),
)


@dataclass
class Row:
    case: Case
    scenes: int
    size: tuple[int, int]  # width, height
    views_given: int
    views_written: int
    seconds: float
    writing_seconds: float
    skip_reasons: str

    def markdown(self) -> str:
        per_100 = 100 * self.seconds / self.views_written if self.views_written else float("nan")
        skipped = self.views_given - self.views_written
        reasons = f" ({self.skip_reasons})" if self.skip_reasons else ""
        return (
            f"| {self.case.name} | {self.scenes} | {self.views_written} | {self.size[0]}x{self.size[1]} "
            f"| {self.seconds:.2f} | {per_100:.2f} | {skipped}{reasons} |"
        )


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


def measure(case: Case, scenes: list[RenderedScene], root: Path, workers: int) -> Row:
    """Write ``scenes`` in the case's format (untimed), then time one ``psfm convert`` of them."""
    source = root / case.name / "input"
    start = time.perf_counter()
    for index, scene in enumerate(scenes):
        case.write(source / f"scene_{index:03d}", scene)
    writing_seconds = time.perf_counter() - start
    command = convert.ConvertCommand(
        format=case.format,
        input=str(source),
        out=str(root / case.name / "shards"),
        workers=workers,
        progress=False,
        pose_model=case.pose_model,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the command's own summary table, one per format
        start = time.perf_counter()
        metrics = convert.run(command)
        seconds = time.perf_counter() - start
    reasons = ", ".join(
        f"{key.split('/', 1)[1]} x{count}" for key, count in metrics.items() if key.startswith("skipped_") and count
    )
    height, width = scenes[0].images[0].shape[:2]
    views_given = sum(len(scene.images) for scene in scenes)
    return Row(case, len(scenes), (width, height), views_given, metrics["views"], seconds, writing_seconds, reasons)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=25, help=f"scenes of {len(FRAME_NAMES)} views per format")
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="WIDTHxHEIGHT")
    parser.add_argument("--sfm-scenes", type=int, default=3)
    parser.add_argument("--sfm-views", type=int, default=10)
    parser.add_argument("--sfm-size", type=parse_size, default=(320, 240), help="WIDTHxHEIGHT")
    parser.add_argument("--workers", type=int, default=1, help="psfm convert workers=")
    parser.add_argument("--formats", nargs="+", choices=[case.name for case in CASES], default=[c.name for c in CASES])
    args = parser.parse_args()
    load_before = os.getloadavg()

    start = time.perf_counter()
    width, height = args.size
    scenes = [rendered(index, height, width, len(FRAME_NAMES)) for index in range(args.scenes)]
    sfm_width, sfm_height = args.sfm_size
    sfm_scenes = [painted(index, sfm_height, sfm_width, args.sfm_views) for index in range(args.sfm_scenes)]
    render_seconds = time.perf_counter() - start
    for name in CONVERTERS:  # imported before any timing, so the first format does not pay for them
        converter(name)
    import_pycolmap()

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for case in CASES:
            if case.name in args.formats:
                rows.append(measure(case, sfm_scenes if case.pose_model else scenes, Path(directory), args.workers))
                print(f"  {case.name}: {rows[-1].seconds:.1f} s", file=sys.stderr, flush=True)

    print(
        f"psfm convert, workers={args.workers}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"{os.cpu_count()} cores, load average before {load_before[0]:.2f} / {load_before[1]:.2f} / "
        f"{load_before[2]:.2f} (1 / 5 / 15 min)"
    )
    print(
        f"inputs (not timed): rendering {render_seconds:.1f} s, writing the formats "
        f"{sum(row.writing_seconds for row in rows):.1f} s"
    )
    print()
    print("| format | scenes | views written | size | seconds | s / 100 views | views skipped |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.markdown())


if __name__ == "__main__":
    main()
