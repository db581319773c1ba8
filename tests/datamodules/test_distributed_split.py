"""Two real ranks x two workers each: disjoint scenes that together cover the dataset exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_synthetic_shards

pytestmark = pytest.mark.slow


def test_two_ranks_two_workers_partition_the_dataset(tmp_path):
    keys = write_synthetic_shards(tmp_path / "shards", num_scenes=24, per_shard=3)  # 8 shards
    worker = Path(__file__).with_name("split_worker.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*command, str(worker), str(tmp_path / "shards"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(rank["world_size"] == 2 for rank in ranks)
    first, second = (rank["keys"] for rank in ranks)
    assert first and second
    assert len(first) == len(set(first)) and len(second) == len(set(second))  # workers of a rank are disjoint
    assert not set(first) & set(second)  # ranks are disjoint
    assert sorted(first + second) == keys  # and together they cover everything once
