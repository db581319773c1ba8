"""Single-core throughput of the numpy ray caster (``psfm.worlds.render``) on random-ish indoor scenes.

Why: world generation must keep up with training, and the renderer is its inner loop; this measures views/s and
scenes/s for the target setting (8 views of 128x128, 6-15 objects) on ONE thread, so numbers do not depend on how
many cores the machine has. Scenes are generated here with a tiny hand-rolled sampler (no dependence on the
world sampler) and rendered once untimed to warm caches.

Usage: ``PYTHONPATH=. python benchmarks/render_throughput.py [--scenes 40] [--size 128] [--views 8]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # must happen before numpy is imported

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from psfm.geometry import intrinsics_from_fov, look_at  # noqa: E402
from psfm.worlds.render import render_scene  # noqa: E402
from psfm.worlds.scene import Camera, OrientedBox, Room, Scene, SceneObject  # noqa: E402

SHAPES = ("box", "cylinder", "sphere", "cone", "table")


def random_scene(rng: np.random.Generator, index: int, size: int, views: int, fov_deg: float) -> Scene:
    """A room of 4-8 m, 6-15 objects of mixed shapes on the floor, cameras at ~1.5 m looking at the centre."""
    w, d, h = rng.uniform(4, 8), rng.uniform(4, 8), rng.uniform(2.5, 3.2)
    light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
    room = Room(
        size=(w, d, h),
        floor_pattern=str(rng.choice(["checker", "stripes", "planks", "plain"])),
        floor_colors=(tuple(rng.uniform(0.2, 0.9, 3)), tuple(rng.uniform(0.2, 0.9, 3))),
        floor_scale=float(rng.uniform(0.4, 1.2)),
        wall_colors=tuple(tuple(rng.uniform(0.4, 0.95, 3)) for _ in range(4)),
        ceiling_color=(0.92, 0.92, 0.9),
        light_direction=tuple(light / np.linalg.norm(light)),
        ambient=float(rng.uniform(0.3, 0.5)),
    )
    objects = []
    for k in range(int(rng.integers(6, 16))):
        shape = str(rng.choice(SHAPES))
        sx, sz = rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.2)
        sy = sx if shape in ("cylinder", "sphere", "cone") else rng.uniform(0.2, 1.0)
        if shape == "sphere":
            sz = sx
        if shape == "table":
            sx, sy, sz = rng.uniform(0.6, 1.6), rng.uniform(0.5, 1.0), rng.uniform(0.6, 0.8)
        center = (rng.uniform(-w / 2 + 0.8, w / 2 - 0.8), rng.uniform(-d / 2 + 0.8, d / 2 - 0.8), sz / 2)
        box = OrientedBox(center=center, size=(sx, sy, sz), yaw=float(rng.uniform(0, np.pi)))
        objects.append(SceneObject(k + 1, shape, shape, "c", tuple(rng.uniform(0.1, 0.9, 3)), box))
    intrinsics = intrinsics_from_fov(size, size, fov_deg)
    cameras = []
    for v in range(views):
        angle = 2 * np.pi * v / views + rng.uniform(-0.3, 0.3)
        eye = np.array([0.42 * w * np.cos(angle), 0.42 * d * np.sin(angle), rng.uniform(1.3, 1.7)])
        target = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.8)])
        cameras.append(Camera(intrinsics, look_at(eye, target, rng.uniform(-5, 5)), size, size))
    return Scene(f"bench-{index}", index, room, tuple(objects), tuple(cameras))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--fov", type=float, default=70.0)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over all scenes; the best is reported")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    scenes = [random_scene(rng, i, args.size, args.views, args.fov) for i in range(args.scenes)]
    for scene in scenes[:2]:
        render_scene(scene)  # warm-up: ray caches, allocator
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for scene in scenes:
            render_scene(scene)
        best = min(best, time.perf_counter() - start)
    views = args.scenes * args.views
    mean_objects = np.mean([len(s.objects) for s in scenes])
    print(f"{args.scenes} scenes x {args.views} views at {args.size}x{args.size}, {mean_objects:.1f} objects/scene")
    print(f"views/s:  {views / best:8.1f}   ({1000 * best / views:.2f} ms/view)")
    print(f"scenes/s: {args.scenes / best:8.1f}")


if __name__ == "__main__":
    main()
