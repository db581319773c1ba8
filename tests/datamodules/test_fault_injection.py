"""``benchmarks/fault_injection.py`` on a tiny world: every injected fault is counted under its reason, and every
scene of the manifest is read or counted, through the training loader and through ``psfm shards``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from psfm.datamodules.skips import MAX_LOGGED_PER_PROCESS, SKIPS

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    """The script as a module (``benchmarks/`` is no package); registered first, as its dataclasses need."""
    spec = importlib.util.spec_from_file_location("fault_injection", ROOT / "benchmarks" / "fault_injection.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


@pytest.mark.slow  # multi-process: each reading runs in a forked child under a timeout (about 6 s in all)
def test_every_fault_is_counted_and_no_scene_is_lost(tmp_path, monkeypatch):
    # as after earlier tests in this process: its log limit spent (the children must still log)
    monkeypatch.setattr(SKIPS, "events", MAX_LOGGED_PER_PROCESS + 1)
    script = load_script()
    report = script.run_fault_injection(tmp_path, scenes=18, per_shard=3, views=4, size=16, timeout=60)
    assert report.manifest_scenes == 18 and len(report.faults) == 12
    assert report.problems() == []
    for reading in report.readings:
        assert reading.crashed is None and not reading.hung, reading
        assert reading.read + sum(reading.skipped.values()) == report.manifest_scenes, reading
        reasons = {f.reason for f in report.faults if not (f.loader_only and reading.consumer == "psfm shards")}
        assert set(reading.skipped) == reasons, reading
    loader = report.readings[0]
    assert any("'../evil' (a path)" in line for line in loader.messages)
    assert "no crash, no hang" in script.format_report(report)
