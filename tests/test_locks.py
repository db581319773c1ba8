"""FolderLock: one writer per folder, in this process or another, and no lock outlives its holder."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from psfm.locks import FolderBusyError, FolderLock

ROOT = Path(__file__).resolve().parents[1]

# holds the lock, forks a child that outlives it (as a render worker would), reports both pids once the
# child runs (its fork handlers done), waits
HOLDER = """
import multiprocessing, os, sys, time
from psfm.locks import FolderLock

def work(running):
    running.set()
    time.sleep(60)

lock = FolderLock(sys.argv[1])
context = multiprocessing.get_context("fork")
running = context.Event()
child = context.Process(target=work, args=(running,), daemon=False)
child.start()
running.wait()
print(os.getpid(), child.pid, flush=True)
time.sleep(60)
"""


def test_two_locks_on_one_folder_conflict_even_in_one_process(tmp_path):
    """flock locks belong to an open file description: a second open in the same process conflicts too."""
    first = FolderLock(tmp_path)
    with pytest.raises(FolderBusyError, match=f"^{tmp_path}: another writer holds this folder"):
        FolderLock(tmp_path)
    first.release()
    FolderLock(tmp_path).release()


def test_a_dropped_lock_unlocks_when_collected(tmp_path):
    FolderLock(tmp_path)  # never released, no reference kept
    gc.collect()
    FolderLock(tmp_path).release()


def test_a_killed_holder_leaves_no_lock_even_while_its_forked_child_lives(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    parent, child = map(int, holder.stdout.readline().split())
    try:
        with pytest.raises(FolderBusyError):
            FolderLock(tmp_path)
        os.kill(parent, signal.SIGKILL)
        holder.wait(timeout=30)
        FolderLock(tmp_path).release()  # the child still runs but holds no share of the lock
    finally:
        for pid in (parent, child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        holder.stdout.close()
