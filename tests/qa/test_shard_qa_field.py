"""The optional ``qa`` field of meta.json: validated when present, ignored by nothing, optional for v1 readers."""

from __future__ import annotations

import copy

import pytest

from psfm.datamodules.format import ShardFormatError, validate_meta

BASE = {
    "format": "psfm-scene",
    "version": 1,
    "scene_id": "scene_01",
    "image_size": [8, 8],
    "pose_source": "none",
    "views": [{"image": "000.rgb.png", "intrinsics": [[8, 0, 4], [0, 8, 4], [0, 0, 1]], "cam_to_world": None}],
}
QUESTION = {"id": "q", "task": "t", "question": "?", "answer": "B", "format": "multiple_choice", "views": [0],
            "choices": ["x", "y"]}  # fmt: skip


def with_qa(**changes) -> dict:
    record = copy.deepcopy(BASE)
    record["qa"] = {"version": 1, "questions": [{**QUESTION, **changes}]}
    return record


def test_v1_records_without_qa_and_with_valid_qa_pass():
    assert validate_meta(copy.deepcopy(BASE)).scene_id == "scene_01"
    assert validate_meta(with_qa()).raw["qa"]["questions"][0]["answer"] == "B"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"answer": "C"}, "not one of its choices' letters"),
        ({"answer": ""}, "not one of its choices' letters"),
        ({"views": [3]}, "names a view the scene lacks"),
        ({"format": "essay"}, "format' must be one of"),
        ({"task": 7}, "field 'task' has type int"),
    ],
)
def test_broken_questions_are_refused_naming_the_field(changes, message):
    with pytest.raises(ShardFormatError, match=message):
        validate_meta(with_qa(**changes), where="shard-000000.tar:scene_01")


def test_unknown_qa_version_is_refused():
    record = with_qa()
    record["qa"]["version"] = 2
    with pytest.raises(ShardFormatError, match="qa version 2"):
        validate_meta(record)


@pytest.mark.parametrize("num_views", [1, 3])
def test_view_indices_run_from_zero_to_one_below_the_number_of_views(num_views):
    """The last view (``num_views - 1``) is a valid index; ``num_views`` itself and negatives are not."""
    record = with_qa()
    record["views"] = [dict(BASE["views"][0], image=f"{i:03d}.rgb.png") for i in range(num_views)]
    for accepted in ([0], [num_views - 1], list(range(num_views))):
        record["qa"]["questions"][0]["views"] = accepted
        validate_meta(copy.deepcopy(record))
    for refused in ([num_views], [0, num_views], [-1], [True]):
        record["qa"]["questions"][0]["views"] = refused
        with pytest.raises(ShardFormatError, match="names a view the scene lacks"):
            validate_meta(copy.deepcopy(record))
