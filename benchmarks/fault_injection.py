"""Fault injection: break a small world copy in every way of issue #10 and check that no scene goes uncounted.

    python benchmarks/fault_injection.py --out /tmp/fi [--scenes 40] [--per-shard 8] [--views 6] [--size 32]

Writes a world with ``psfm.worlds.generate.generate_world``, copies it and breaks the copy: in single
scenes a truncated JPEG, garbage bytes in a view, an invalid ``meta.json``, all-zero poses, a scaled
(non-rigid) rotation, NaN intrinsics, a ``.pickle`` member, a ``../evil`` member and a scene below
``views.min_views``; whole shards cut mid-member, cut at a header (512-byte block) boundary, and deleted.

It then reads the copy the two ways a person does, each in a child process under a timeout, so that a
crash or a hang becomes a row of the table instead of the end of the script: one finite epoch of the
training loader (``SceneDataModule`` with ``datamodule.resampled=false``, as ``psfm pretrain`` reads it),
and ``psfm shards`` (``psfm.commands.shards.run``). It prints scenes in the manifest, scenes read, scenes
skipped by reason, crashes and hangs, and exits 1 unless every scene is read or counted under its
fault's reason with no crash and no hang.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import queue  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from psfm.datamodules.writer import read_manifest  # noqa: E402
from psfm.worlds.generate import generate_world  # noqa: E402
from psfm.worlds.sampler import WorldConfig  # noqa: E402

Members = list[tuple[str, bytes]]  # a tar's members in order: (name, bytes)


@dataclass
class Fault:
    """One injected fault and what the loader must count for it."""

    name: str
    where: str
    reason: str  # the skip reason it must be counted under
    scenes: int  # scenes it loses
    loader_only: bool = False  # psfm shards reads such a scene (views.min_views is a loader setting)


@dataclass
class Reading:
    """What one consumer made of the broken copy."""

    consumer: str
    read: int = 0
    skipped: Counter = field(default_factory=Counter)
    crashed: str | None = None
    hung: bool = False
    messages: list[str] = field(default_factory=list)


@dataclass
class FaultReport:
    manifest_scenes: int
    faults: list[Fault]
    readings: list[Reading]

    def expected(self, consumer: str) -> tuple[int, Counter]:
        """(scenes read, skips by reason) a consumer must report."""
        counted = [f for f in self.faults if not (f.loader_only and consumer == "psfm shards")]
        skipped = Counter()
        for fault in counted:
            skipped[fault.reason] += fault.scenes
        return self.manifest_scenes - sum(skipped.values()), skipped

    def problems(self) -> list[str]:
        """One line per difference from the expected accounting; empty when every scene is accounted for."""
        found = []
        for reading in self.readings:
            read, skipped = self.expected(reading.consumer)
            if reading.crashed or reading.hung:
                found.append(f"{reading.consumer}: {'hung' if reading.hung else 'crashed: ' + reading.crashed}")
            elif reading.read != read or reading.skipped != skipped:
                found.append(
                    f"{reading.consumer}: read {reading.read} and skipped {dict(reading.skipped)}; "
                    f"expected read {read} and skipped {dict(skipped)}"
                )
        return found


# --- breaking a copy ---------------------------------------------------------------------------------
def read_members(shard: Path) -> Members:
    with tarfile.open(shard) as tar:
        return [(info.name, tar.extractfile(info).read()) for info in tar.getmembers()]


def write_members(shard: Path, members: Members) -> None:
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def replace_member(name: str, change: Callable[[bytes], bytes]) -> Callable[[Members], Members]:
    return lambda members: [(n, change(d) if n == name else d) for n, d in members]


def insert_after(name: str, new_name: str, data: bytes) -> Callable[[Members], Members]:
    def insert(members: Members) -> Members:
        index = [n for n, _ in members].index(name) + 1
        return [*members[:index], (new_name, data), *members[index:]]

    return insert


def edit_meta(key: str, edit: Callable[[dict], None]) -> Callable[[Members], Members]:
    def change(data: bytes) -> bytes:
        record = json.loads(data)
        edit(record)
        return json.dumps(record).encode()  # NaN stays NaN: json writes and reads it

    return replace_member(f"{key}.meta.json", change)


def zero_poses(record: dict) -> None:
    for view in record["views"]:
        view["cam_to_world"] = [[0.0] * 4] * 4


def scaled_rotation(record: dict) -> None:
    pose = np.array(record["views"][1]["cam_to_world"])
    pose[:3, :3] *= 2
    record["views"][1]["cam_to_world"] = pose.tolist()


def nan_intrinsics(record: dict) -> None:
    record["views"][0]["intrinsics"][0][2] = float("nan")


def drop_last_view(key: str) -> Callable[[Members], Members]:
    def drop(members: Members) -> Members:
        record = json.loads(dict(members)[f"{key}.meta.json"])
        last = len(record["views"]) - 1
        record["views"] = record["views"][:last]
        meta = json.dumps(record).encode()
        prefix = f"{key}.{last:03d}."
        return [(n, meta if n == f"{key}.meta.json" else d) for n, d in members if not n.startswith(prefix)]

    return drop


def garbage(data: bytes) -> bytes:
    return np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()


def scene_faults(key: str, views: int) -> list[tuple[str, str, str, Callable[[Members], Members]]]:
    """(name, member, reason, change) of every single-scene fault, for the scene ``key``."""
    meta = f"{key}.meta.json"
    return [
        ("truncated JPEG", "000.rgb.jpg", "decode", replace_member(f"{key}.000.rgb.jpg", lambda d: d[:100])),
        ("garbage bytes in a view", "001.rgb.jpg", "decode", replace_member(f"{key}.001.rgb.jpg", garbage)),
        ("meta.json not JSON", "meta.json", "invalid_json", replace_member(meta, lambda d: d[: len(d) // 2])),
        ("all-zero poses", "meta.json", "non_rigid_pose", edit_meta(key, zero_poses)),
        ("scaled rotation (2R)", "meta.json", "non_rigid_pose", edit_meta(key, scaled_rotation)),
        ("NaN intrinsics", "meta.json", "non_finite_camera", edit_meta(key, nan_intrinsics)),
        (".pickle member", "+ <key>.pickle", "unknown_member", insert_after(meta, f"{key}.pickle", b"\x80\x04N.")),
        ("../evil member", "+ ../evil", "unsafe_member", insert_after(meta, "../evil", b"evil")),
        (f"{views - 1} views, below min_views", "meta.json", "too_few_views", drop_last_view(key)),
    ]


def member_offsets(shard: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(shard) as tar:
        return tar.getmembers()


def first_member_of(shard: Path, scene_index: int) -> tarfile.TarInfo:
    firsts: dict[str, tarfile.TarInfo] = {}
    for info in member_offsets(shard):
        firsts.setdefault(info.name.split(".", 1)[0], info)
    return list(firsts.values())[scene_index]


def inject_faults(directory: Path, views: int) -> list[Fault]:
    """Break the world copy in ``directory``: single scenes in the first shards, then three whole shards."""
    shards = read_manifest(directory)["shards"]
    if len(shards) < 4:
        raise ValueError(f"{directory}: need at least 4 shards (1 for scene faults, 3 for shard faults)")
    faults: list[Fault] = []
    scene_shards, (cut_mid, cut_header, deleted) = shards[:-3], shards[-3:]
    slots = [(shard, key) for shard in scene_shards for key in shard["keys"]]
    planned = scene_faults("KEY", views)
    if len(slots) < len(planned):
        raise ValueError(f"{directory}: {len(slots)} scenes before the last 3 shards, {len(planned)} faults to place")
    stride = len(slots) // len(planned)
    for index in range(len(planned)):
        shard, key = slots[index * stride]
        name, member, reason, change = scene_faults(key, views)[index]
        path = directory / shard["name"]
        write_members(path, change(read_members(path)))
        loader_only = reason == "too_few_views"
        faults.append(Fault(name, f"{shard['name']}:{key} {member}", reason, 1, loader_only))
    for shard, name, reason, cut in (
        (cut_mid, "tar cut mid-member", "ReadError", lambda info: info.offset_data + info.size // 2),
        (cut_header, "tar cut at a header boundary", "truncated_shard", lambda info: info.offset),
    ):
        path, index = directory / shard["name"], shard["num_samples"] // 2
        path.write_bytes(path.read_bytes()[: cut(first_member_of(path, index))])
        lost = shard["num_samples"] - index
        faults.append(Fault(name, f"{shard['name']} (in scene {index} of {shard['num_samples']})", reason, lost))
    (directory / deleted["name"]).unlink()
    faults.append(Fault("deleted shard", deleted["name"], "FileNotFoundError", deleted["num_samples"]))
    return faults


# --- reading it ---------------------------------------------------------------------------------------
def datamodule_config(directory: Path, views: int, size: int, workers: int):
    from psfm.datamodules.datamodule import DataModuleConfig
    from psfm.datamodules.views import ViewSampling

    return DataModuleConfig(
        train=str(directory),
        val=None,
        batch_size=4,
        num_workers=workers,
        image_size=[size, size],
        views=ViewSampling(min_views=views, max_views=views),  # every view decoded: a broken one is always hit
        resampled=False,
        shuffle_buffer=8,
        augment=False,
    )


def read_with_loader(directory: Path, views: int, size: int, workers: int) -> dict:
    """One finite epoch of the training loader: scenes in its batches, and the skips they carried."""
    from psfm.datamodules.datamodule import SceneDataModule
    from psfm.datamodules.skips import SKIPS

    before = Counter(SKIPS.reasons)
    read = skipped = 0
    for batch in SceneDataModule(datamodule_config(directory, views, size, workers)).train_dataloader():
        read, skipped = read + batch.batch_size, skipped + batch.skipped
    # with workers the reasons stay in their processes; the batches carry the count
    reasons = SKIPS.since(before) if workers == 0 else Counter({"(in workers)": skipped})
    if sum(reasons.values()) != skipped:
        reasons["(not carried by a batch)"] = sum(reasons.values()) - skipped
    return {"read": read, "skipped": reasons}


def read_with_psfm_shards(directory: Path, views: int, size: int, workers: int) -> dict:
    """``psfm shards`` as a person runs it: verify, decode every view, then stream the loader through."""
    from psfm.commands import shards

    config = datamodule_config(directory, views, size, workers)
    command = shards.ShardsCommand(data=str(directory), verify=True, batches=1000, datamodule=config)
    with contextlib.redirect_stdout(io.StringIO()):  # its own table; the report prints the comparison
        metrics = shards.run(command)
    reasons = Counter({key.split("/", 1)[1]: count for key, count in metrics.items() if key.startswith("skipped/")})
    return {"read": metrics["scenes"], "skipped": reasons}


class Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def child(consume: Callable[..., dict], args: tuple, results: multiprocessing.Queue) -> None:
    import torch

    torch.set_num_threads(1)  # as a forked DataLoader worker does
    messages = Messages()
    psfm_log = logging.getLogger("psfm")  # skips (psfm.data), checksum problems (psfm.shards)
    psfm_log.addHandler(messages)
    psfm_log.propagate = False  # the report lists the loader's, once
    try:
        result = consume(*args)
    except BaseException as error:  # a crash is a result here, not the end of the script
        result = {"crashed": f"{type(error).__name__}: {error}"[:400]}
    results.put({**result, "messages": messages.lines})


def read_bounded(consumer: str, consume: Callable[..., dict], args: tuple, timeout: float) -> Reading:
    """Run ``consume(*args)`` in a forked child; a hang past ``timeout`` seconds is killed and reported."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    process = context.Process(target=child, args=(consume, args, results), daemon=True)
    process.start()
    deadline, result = time.monotonic() + timeout, None
    while result is None and time.monotonic() < deadline:
        try:
            result = results.get(timeout=0.2)
        except queue.Empty:
            if not process.is_alive() and results.empty():
                result = {"crashed": f"the process died (exit code {process.exitcode})"}
    if result is None:
        process.kill()
        process.join()
        return Reading(consumer, hung=True)
    process.join(timeout=10)
    reading = Reading(consumer, crashed=result.get("crashed"), messages=result.get("messages", []))
    reading.read, reading.skipped = result.get("read", 0), Counter(result.get("skipped", {}))
    return reading


def run_fault_injection(
    out: Path,
    scenes: int = 40,
    per_shard: int = 8,
    views: int = 6,
    size: int = 32,
    timeout: float = 60.0,
    workers: int = 0,
) -> FaultReport:
    """Write, break and read a world copy under ``out``; see the module docstring."""
    out = Path(out)
    clean, broken = out / "clean", out / "broken"
    if not (clean / "manifest.json").exists():
        config = WorldConfig(views_per_scene=views, height=size, width=size)
        generate_world(clean, config, scenes, "train", samples_per_shard=per_shard, progress=False)
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(clean, broken)
    faults = inject_faults(broken, views)
    args = (broken, views, size, workers)
    readings = [
        read_bounded("loader", read_with_loader, args, timeout),
        read_bounded("psfm shards", read_with_psfm_shards, args, timeout),
    ]
    return FaultReport(read_manifest(broken)["num_samples"], faults, readings)


def format_report(report: FaultReport) -> str:
    lines = [f"{'fault':<32} {'where':<62} {'counted as':<18} scenes lost"]
    lines += [f"{f.name:<32} {f.where:<62} {f.reason:<18} {f.scenes:>11}" for f in report.faults]
    names = [reading.consumer for reading in report.readings]
    lines += ["", f"{'':<32}" + "".join(f"{name:>14}" for name in names)]

    def row(label: str, values: list) -> None:
        lines.append(f"{label:<32}" + "".join(f"{value!s:>14}" for value in values))

    row("scenes in manifest", [report.manifest_scenes] * len(names))
    row("scenes read", [r.read for r in report.readings])
    reasons = sorted({reason for r in report.readings for reason in r.skipped})
    for reason in reasons:
        row(f"skipped: {reason}", [r.skipped.get(reason, 0) for r in report.readings])
    row("read + skipped", [r.read + sum(r.skipped.values()) for r in report.readings])
    row("crashes", [int(r.crashed is not None) for r in report.readings])
    row("hangs", [int(r.hung) for r in report.readings])
    for reading in report.readings:
        if reading.crashed:
            lines.append(f"{reading.consumer} crashed: {reading.crashed}")
    loader = report.readings[0]
    lines += ["", f"the loader's messages ({len(loader.messages)}):"] + [f"  {line}" for line in loader.messages]
    problems = report.problems()
    lines.append("")
    lines += [f"PROBLEM {line}" for line in problems] or [
        "every scene read or counted under its fault's reason; no crash, no hang"
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the clean world and its broken copy")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--per-shard", type=int, default=8)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds each reading may take before it is a hang")
    parser.add_argument("--workers", type=int, default=0, help="loader workers (with workers, reasons stay in them)")
    args = parser.parse_args()
    start = time.perf_counter()
    report = run_fault_injection(
        args.out, args.scenes, args.per_shard, args.views, args.size, args.timeout, args.workers
    )
    print(
        f"fault injection: {report.manifest_scenes} scenes, {args.per_shard} a shard, {args.views} views of "
        f"{args.size}x{args.size}; broken copy in {args.out / 'broken'}\n"
    )
    print(format_report(report))
    print(f"\n{time.perf_counter() - start:.1f} s")
    sys.exit(1 if report.problems() else 0)


if __name__ == "__main__":
    main()
