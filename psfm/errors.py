"""Mistakes in what a person asked for, kept apart from bugs so commands can answer them in one line.

Every ``psfm`` command turns a ``UsageError`` into ``SystemExit("psfm <command>: <message>")``; any
other exception keeps its traceback, because it is psfm's fault, not the caller's. The message must
name the key, value, path or file and say what to do instead.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A config value, path or file that cannot work as given (``trainer.max_steps=0``, a missing folder)."""


class MissingPathError(UsageError, FileNotFoundError):
    """A path the user named that does not exist or holds nothing usable (still a ``FileNotFoundError``)."""


def require_at_least(minimum: int, section: str, **values: int | None) -> None:
    """Refuse the first count below ``minimum``, naming it ``section.name=value``; ``None`` (unset) passes.

    Called from the config dataclasses' ``__post_init__``, so a bad count fails when the config is
    built, before a model or a trainer exists.
    """
    prefix = f"{section}." if section else ""  # "" for a command's top-level keys
    for name, value in values.items():
        if value is not None and value < minimum:
            raise UsageError(f"{prefix}{name}={value} cannot work: it must be at least {minimum}")
