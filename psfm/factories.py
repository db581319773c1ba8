"""A user's own network named by import path, ``"package.module:function"`` (backbones and teachers).

Its own module, torch-free, so the ``module`` backbone can resolve a factory while ``psfm.load``
rebuilds an export without importing the teachers.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any


def import_factory(path: str) -> Callable[..., Any]:
    """``"package.module:attribute"`` -> the callable it names, with errors that say which part is wrong."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"factory {path!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"factory {path!r}: importing {module_name!r} failed ({type(error).__name__}: {error}); "
            "is its package installed or on PYTHONPATH?"
        ) from error
    try:
        factory = functools.reduce(getattr, attribute.split("."), module)
    except AttributeError:
        raise ImportError(f"factory {path!r}: module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(factory):
        raise TypeError(f"factory {path!r} is a {type(factory).__name__}, not a callable")
    return factory
