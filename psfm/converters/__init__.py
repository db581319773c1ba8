"""Converters from the capture formats people have to psfm scene shards (``psfm convert <format>``).

Each format module parses its metadata into frames; ``psfm.converters.base`` does the rest through the one
writer (``build_sample`` + ``ShardWriter``). Conventions handled per format: ``docs/converters.md``.
"""

from psfm.converters.base import CONVERTERS, ConversionReport, convert
from psfm.converters.frames import CaptureError
from psfm.converters.options import ConvertOptions

__all__ = ["CONVERTERS", "CaptureError", "ConversionReport", "ConvertOptions", "convert"]
