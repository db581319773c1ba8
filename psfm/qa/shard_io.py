"""QA on scene shards: read scenes with the project's validating reader, write them back with questions.

Reading reuses the loader's stages (tar reader with counted skips, ``parse_scene`` validation), so a
broken scene is reported the same way everywhere; webdataset is imported only when shards are
actually read, which keeps ``psfm.qa`` importable with numpy alone. Writing goes through the one
``ShardWriter``: the scene's members are copied unchanged and ``meta.json`` gains a ``qa`` field
(``docs/shard_format.md``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from psfm.datamodules.codecs import decode_depth, decode_mask
from psfm.datamodules.format import META_MEMBER, QA_VERSION, dump_meta
from psfm.datamodules.sample import ShardSample
from psfm.qa.question import Question


def iter_scenes(urls: Sequence[str]) -> Iterator[Any]:
    """Validated scenes (``psfm.datamodules.stages.ParsedScene``) of ``urls`` in order; bad ones are counted
    in ``psfm.datamodules.skips.SKIPS`` and skipped."""
    import webdataset as wds

    from psfm.datamodules.epoch import SharedEpoch
    from psfm.datamodules.stages import ShardList, scene_reader

    yield from wds.DataPipeline(ShardList(urls, SharedEpoch(), shuffle=False), *scene_reader())


def decode_maps(scene: Any, depth: bool, mask: bool) -> tuple[list[np.ndarray] | None, list[np.ndarray] | None]:
    """Per-view depth (metres) and instance masks, None where not asked for or not stored in every view.

    Raises:
        ShardFormatError: a stored map does not decode, naming the member.
    """
    where = f"{scene.url}:{scene.key}"
    views = scene.meta.views
    depths = masks = None
    if depth and views and all(v.depth for v in views):
        depths = [decode_depth(scene.members[v.depth], f"{where}.{v.depth}") for v in views]
    if mask and views and all(v.mask for v in views):
        masks = [decode_mask(scene.members[v.mask], f"{where}.{v.mask}") for v in views]
    return depths, masks


def with_questions(scene: Any, questions: list[Question], info: dict[str, Any]) -> ShardSample:
    """The scene as a shard sample whose ``meta.json`` carries the questions (members otherwise unchanged)."""
    record = dict(scene.meta.raw)
    record["qa"] = {"version": QA_VERSION, **info, "questions": [q.to_json() for q in questions]}
    members = dict(scene.members)
    members[META_MEMBER] = dump_meta(record)
    return ShardSample(scene.key, members)
