"""``benchmarks/qa_annotations.py`` on a few scenes: fixtures in the real formats go through ``psfm convert boxes``
and ``psfm qa`` with every box accounted for, every count right and every referent unique."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("qa_annotations", ROOT / "benchmarks" / "qa_annotations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_real_format_fixtures_keep_every_box_and_answer_right(tmp_path):
    script = load_script()
    for offset, (name, writer) in enumerate(
        (("scannet", script.scannet), ("scannetpp", script.scannetpp), ("arkitscenes", script.arkitscenes))
    ):
        result = script.run(name, writer, 3, tmp_path, offset)
        objects = result["objects"]
        kept = objects["objects/placed"] + sum(n for key, n in objects.items() if key.startswith("objects/unplaced/"))
        merged, structure = objects.get("objects/merged_duplicates", 0), objects.get("objects/structure", 0)
        assert kept + merged + structure == objects["objects/annotated"], name  # every box accounted for
        right, counted = map(int, result["count_questions_right"].split("/"))
        unique, asked = map(int, result["unique_referents"].split("/"))
        assert counted and right == counted and asked and unique == asked, name
        assert result["floor_error_m"]["max"] < 0.1, name
    agreement = script.run("scannet", script.scannet, 2, tmp_path / "again", 9)["annotation_counts"]
    assert agreement["compared"] and agreement["agreeing"] == agreement["compared"]
