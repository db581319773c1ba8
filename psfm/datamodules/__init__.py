"""Scene shards: the format (``format``), the one writer (``writer``), and the streaming loader.

The writer side (``build_sample``, ``ShardWriter``) imports without torch; the loader side
(``SceneDataModule``, ``build_pipeline``) lives in its own modules.
"""

from psfm.datamodules.format import FORMAT_VERSION, SceneMeta, ShardFormatError, validate_meta
from psfm.datamodules.sample import ShardSample, build_sample
from psfm.datamodules.writer import ShardWriter, read_manifest, verify_shards

__all__ = [
    "FORMAT_VERSION",
    "SceneMeta",
    "ShardFormatError",
    "ShardSample",
    "ShardWriter",
    "build_sample",
    "read_manifest",
    "validate_meta",
    "verify_shards",
]
