"""Data without one usable scene stops pretraining and ``psfm shards`` within seconds, with one line saying why.

Every scene below ``views.min_views``, or every shard missing, used to print some 40 'skipped' warnings
and then spin forever: resampled streams drew shards without end, finite epochs ended empty and the
trainer began the next. The runs happen in a subprocess with a timeout, so that bug fails the test
rather than hanging the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from psfm.datamodules.datamodule import DataModuleConfig, SceneDataModule
from psfm.datamodules.views import ViewSampling

ROOT = Path(__file__).resolve().parents[2]


def run_bounded(command: list[str], cwd: Path, timeout: float) -> tuple[int | None, str, str]:
    """(return code, or None when it timed out; stdout; stderr), the process group killed on a timeout.

    ``cwd`` outside the repository: Hydra writes its run folders there; PYTHONPATH keeps this checkout's psfm.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err


def missing_shards(world: Path, tmp_path: Path) -> Path:
    """The train split's manifest without its shards: resolves to shard URLs that all fail to open."""
    folder = tmp_path / "missing"
    folder.mkdir()
    shutil.copy(world / "train" / "manifest.json", folder / "manifest.json")
    return folder


def test_no_usable_scene_stops_pretraining_and_shards_with_one_line_naming_why(tiny_world, tmp_path):
    command = [
        sys.executable,
        "-m",
        "tests.training.starved_worker",
        str(tiny_world),
        str(missing_shards(tiny_world, tmp_path)),
    ]
    code, out, err = run_bounded(command, tmp_path, timeout=120)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert code == 0, f"ended {[r['case'] for r in results]}, then {'hung' if code is None else code}:\n{err[-3000:]}"
    assert len(results) == 6
    for result in results:
        case, message = result["case"], result["message"]
        assert result["error"] == "NoUsableScenesError", (case, result)
        assert "\n" not in message and len(message) < 600, (case, message)
        why = "fewer than views.min_views=7" if "too_few_views" in case else "No such file or directory"
        assert why in message, (case, message)


def test_psfm_shards_exits_with_one_line(tiny_world, tmp_path):
    """What a person sees: exit status 1 and a last line naming the cause, no traceback."""
    psfm = [sys.executable, "-m", "psfm.cli", "shards", f"data={tiny_world / 'train'}", "verify=false", "batches=2"]
    psfm += ["datamodule.views.min_views=7", "datamodule.views.max_views=8", "datamodule.image_size=[32,32]"]
    code, _, err = run_bounded(psfm, tmp_path, timeout=120)
    assert code is not None, "psfm shards hung:\n" + err[-3000:]
    assert code != 0 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("psfm shards: ") and "fewer than views.min_views=7" in last, last


def test_a_few_usable_shards_among_missing_ones_still_train(scene_shards, tmp_path):
    """The draw limit stops data with *no* usable scene, not data with little: 3 of 4 shards missing still stream.

    In-process: this case never hung, so a regression here fails rather than hangs.
    """
    directory, keys = scene_shards
    sparse = tmp_path / "sparse"
    shutil.copytree(directory, sparse)
    for shard in sorted(sparse.glob("*.tar"))[1:]:
        shard.unlink()
    config = DataModuleConfig(train=str(sparse), val=None, batch_size=2, num_workers=0, image_size=[16, 16])
    config.resampled, config.samples_per_epoch, config.views = True, 12, ViewSampling(2, 3)
    batches = list(SceneDataModule(config).train_dataloader())
    assert len(batches) == 6 and {key for batch in batches for key in batch.scene_keys} <= set(keys[:3])
