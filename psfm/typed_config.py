"""Composed Hydra configs as typed command objects, refusing keys their schema does not declare.

Every ``psfm`` command stores a dataclass schema in Hydra's ConfigStore, so ``key=value`` with a
misspelled key already fails at compose time. ``+key=value`` (Hydra's own hint for a new key)
slips past that check, and ``OmegaConf.to_object`` would then drop the key without a word: a typo
would silently run the default. ``to_command`` closes that hole for every command.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from psfm.errors import UsageError


class UnknownConfigKeyError(UsageError):
    """A key the command's schema does not declare (commands turn it into a one-line exit message)."""


def reject_unknown_keys(node: DictConfig, path: str = "") -> None:
    """Raise on keys a schema node does not declare, naming them; untyped dicts (teachers, overrides) pass.

    Raises:
        UnknownConfigKeyError: ``unknown config key(s) ['model.encoder.dimm']; EncoderConfig has: ...``.
    """
    schema = OmegaConf.get_type(node)
    if is_dataclass(schema):
        declared = {item.name for item in fields(schema)}
        unknown = [f"{path}{key}" for key in node if key not in declared]
        if unknown:
            known = ", ".join(sorted(declared))
            raise UnknownConfigKeyError(f"unknown config key(s) {unknown}; {schema.__name__} has: {known}")
    for key in node:
        if not OmegaConf.is_missing(node, key) and not OmegaConf.is_interpolation(node, key):
            child = node[key]
            if isinstance(child, DictConfig):
                reject_unknown_keys(child, f"{path}{key}.")


def to_command(cfg: DictConfig | Any) -> Any:
    """The composed config as its typed schema object (unknown keys refused); a schema object passes through."""
    if not isinstance(cfg, DictConfig):
        return cfg
    reject_unknown_keys(cfg)
    return OmegaConf.to_object(cfg)
