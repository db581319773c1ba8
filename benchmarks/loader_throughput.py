"""Loader throughput per worker: scenes/s from tar shards to ``MultiViewBatch`` es.

Measured in-process (one worker's work: tar read, JSON validation, view selection, JPEG decode,
fitting, pose normalization, collation). Goal (issue #2): >= 150 scenes/s per worker for 8 views
at 128x128 JPEG.

    python benchmarks/loader_throughput.py [--scenes 256] [--views 8] [--size 128] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from psfm.datamodules.epoch import SharedEpoch  # noqa: E402
from psfm.datamodules.pipeline import LoaderOptions, build_pipeline  # noqa: E402
from psfm.datamodules.shardlists import resolve_shards  # noqa: E402
from psfm.datamodules.views import ViewSampling  # noqa: E402
from psfm.worlds.generate import generate_world  # noqa: E402
from psfm.worlds.sampler import WorldConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=256)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", action="store_true", help="also decode depth and masks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as directory:
        config = WorldConfig(views_per_scene=args.views, height=args.size, width=args.size)
        generate_world(directory, config, args.scenes, "bench", 64, workers=os.cpu_count() or 1, progress=False)
        urls = resolve_shards(directory).urls
        options = LoaderOptions(
            batch_size=8,
            image_size=(args.size, args.size),
            views=ViewSampling(args.views, args.views),
            shuffle_buffer=64,
            crop="center",
            load_depth=args.depth,
            load_mask=args.depth,
        )
        rates = []
        for epoch in range(args.epochs):
            start = time.perf_counter()
            scenes = sum(batch.batch_size for batch in build_pipeline(urls, options, SharedEpoch(epoch)))
            rates.append(scenes / (time.perf_counter() - start))
    best = max(rates)
    print(f"loader, one worker: {args.scenes} scenes x {args.views} views at {args.size}x{args.size} JPEG")
    print(
        f"  per epoch: {', '.join(f'{r:.1f}' for r in rates)} scenes/s; "
        f"best {best:.1f} scenes/s = {best * args.views:.0f} views/s"
    )


if __name__ == "__main__":
    main()
