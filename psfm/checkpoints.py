"""Safe loading of weight files users bring (timm/torch checkpoints, safetensors), with clear errors.

Nothing is unpickled beyond tensors and plain containers: ``.safetensors`` files go through
safetensors, everything else through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

_WRAPPER_KEYS = ("state_dict", "model", "module", "teacher", "student", "model_ema")
_PREFIXES = ("module.", "model.", "backbone.", "_orig_mod.")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, unwrapped from the usual ``{"state_dict": ...}`` / ``{"model": ...}`` nests.

    A psfm export (its folder, or its ``encoder.safetensors``) gives its *backbone*: that is how a
    backbone trained in one run (say, per view on depth) becomes the frozen backbone of the next,
    as Spa3R puts a frozen geometry model under its encoder.
    """
    path = Path(path)
    if path.is_dir() and (path / "encoder.safetensors").is_file():
        path = path / "encoder.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated, or holding arbitrary pickled objects
        raise ValueError(f"{path}: cannot be read as a weight file ({type(error).__name__}: {error})") from None
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: holds no flat name -> tensor mapping")
    return _export_backbone(state)


def _export_backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A psfm export's weights are ``backbone.*`` + ``latent.*``: keep the backbone's, unprefixed."""
    parts = {key.split(".", 1)[0] for key in state}
    if parts != {"backbone", "latent"}:
        return state
    return {key[len("backbone.") :]: value for key, value in state.items() if key.startswith("backbone.")}


def load_into(module: nn.Module, path: str | Path, ignore: tuple[str, ...] = ("head.", "fc.", "classifier.")) -> None:
    """Load a weight file into ``module``; names are matched after stripping wrapper prefixes.

    Keys starting with ``ignore`` (classifier heads) may be missing or extra. Any other missing key,
    unexpected key or shape mismatch raises one error listing them, so a checkpoint of the wrong
    architecture is never half-loaded silently.
    """
    state = load_state_dict(path)
    for prefix in _PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    own = module.state_dict()
    missing = [key for key in own if key not in state and not key.startswith(ignore)]
    unexpected = [key for key in state if key not in own and not key.startswith(ignore)]
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
            if keys
        ]
        raise ValueError(f"{path}: does not fit {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict({key: value for key, value in state.items() if key in own}, strict=False)
