"""World generation throughput: scenes/s on one core, and how it scales across processes.

The unit of work is the whole per-scene job: sample the scene, ray-cast RGB + depth + instance
masks for every view, encode JPEG/PNG, write the tar. Goal (issue #2): >= 20 scenes/s on one core
for 8 views at 128x128.

    python benchmarks/world_throughput.py [--scenes 200] [--views 8] [--size 128] [--workers 2]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core means one core, numpy included
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import tempfile  # noqa: E402
import time  # noqa: E402

from psfm.worlds.generate import generate_world, make_scene_sample  # noqa: E402
from psfm.worlds.render import render_scene  # noqa: E402
from psfm.worlds.sampler import WorldConfig, sample_scene  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = WorldConfig(views_per_scene=args.views, height=args.size, width=args.size)

    make_scene_sample(0, config, "bench")  # warm-up (imports, caches)
    start = time.perf_counter()
    scenes = [sample_scene(i, config, "bench") for i in range(args.scenes)]
    sample_s = time.perf_counter() - start
    start = time.perf_counter()
    for scene in scenes:
        render_scene(scene)
    render_s = time.perf_counter() - start

    rates = {}
    for workers in sorted({1, args.workers}):
        with tempfile.TemporaryDirectory() as directory:
            report = generate_world(directory, config, args.scenes, "bench", 64, workers, progress=False)
        rates[workers] = report.scenes_per_second

    print(f"world: {args.scenes} scenes x {args.views} views at {args.size}x{args.size}")
    print(f"  sampling only   : {args.scenes / sample_s:8.1f} scenes/s")
    print(
        f"  ray casting only: {args.scenes / render_s:8.1f} scenes/s  "
        f"({1e3 * render_s / (args.scenes * args.views):.2f} ms/view)"
    )
    for workers, rate in rates.items():
        print(f"  end to end, {workers} process(es): {rate:8.1f} scenes/s  (sample + render + encode + write)")
    if len(rates) > 1:
        print(
            f"  parallel speed-up: {rates[args.workers] / rates[1]:.2f}x "
            f"on {args.workers} processes ({os.cpu_count()} cores)"
        )


if __name__ == "__main__":
    main()
