"""Render the procedural world into scene shards: in parallel, byte-deterministic, resumable."""

from __future__ import annotations

import logging
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from psfm.datamodules.sample import ShardSample, build_sample
from psfm.datamodules.writer import ShardWriter
from psfm.progress import track
from psfm.worlds.render import render_scene
from psfm.worlds.sampler import WorldConfig, sample_scene, scene_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationReport:
    """What one call wrote: scenes rendered now, scenes found already done, and the rate."""

    directory: Path
    written: int
    already_done: int
    seconds: float

    @property
    def scenes_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("nan")


def make_scene_sample(index: int, config: WorldConfig, split: str, image_format: str = "jpg") -> ShardSample:
    """Sample, render and encode scene ``index``: the unit of work a generator process runs."""
    scene = sample_scene(index, config, split)
    views = render_scene(scene)
    return build_sample(
        scene.scene_id,
        images=[view.rgb for view in views],
        intrinsics=[camera.intrinsics for camera in scene.cameras],
        cam_to_world=[camera.cam_to_world for camera in scene.cameras],
        pose_source="gt",
        source={"kind": "world", "seed": config.seed, "split": split, "index": index},
        depths=[view.depth for view in views],
        masks=[view.instance for view in views],
        objects=[obj.to_json() for obj in scene.objects],
        room=scene.room.to_json(),
        metric_scale="gt",
        image_format=image_format,
    )


def _work(task: tuple[int, WorldConfig, str, str]) -> ShardSample:
    return make_scene_sample(*task)


def generate_world(
    out_dir: str | Path,
    config: WorldConfig,
    num_scenes: int,
    split: str = "train",
    samples_per_shard: int = 64,
    workers: int = 1,
    image_format: str = "jpg",
    progress: bool = True,
) -> GenerationReport:
    """Write scenes ``0..num_scenes-1`` of ``split`` into ``out_dir`` as shards with a manifest.

    Scenes already listed in the folder's manifest are skipped, so re-running after an
    interruption (or with a larger ``num_scenes``) continues where it stopped. Results are written
    in scene order whatever ``workers`` is, so the shards do not depend on the parallelism.
    """
    info = {"producer": "psfm.worlds", "world": asdict(config), "split": split, "image_format": image_format}
    start = time.perf_counter()
    with ShardWriter(out_dir, samples_per_shard, info=info) as writer:
        todo = [i for i in range(num_scenes) if scene_key(config.seed, split, i) not in writer.done_keys]
        already_done = num_scenes - len(todo)
        if already_done:
            log.info(
                "%s: %d of %d scenes already written; rendering the other %d",
                out_dir,
                already_done,
                num_scenes,
                len(todo),
            )
        tasks = [(i, config, split, image_format) for i in todo]
        if workers > 1 and len(tasks) > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                samples = pool.imap(_work, tasks, chunksize=max(1, min(8, len(tasks) // (4 * workers))))
                for sample in track(samples, len(tasks), f"world/{split}", "scenes", progress):
                    writer.write(sample)
        else:
            for sample in track(map(_work, tasks), len(tasks), f"world/{split}", "scenes", progress):
                writer.write(sample)
    return GenerationReport(Path(out_dir), len(todo), already_done, time.perf_counter() - start)
