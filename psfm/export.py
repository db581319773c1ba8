"""Export a pretrained encoder to safetensors + JSON, and ``psfm.load`` it back without Lightning.

The export holds only the ``SpatialEncoder`` (backbone + latent encoder): the decoder, heads and
teachers exist to train it and are not needed downstream (probes, the VLM adapter).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from psfm.encoders.inputs import check_input
from psfm.errors import MissingPathError, UsageError
from psfm.io import atomic_open, atomic_write_json

EXPORT_FORMAT = "psfm-encoder"
EXPORT_VERSION = 1


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """CPU tensors of every parameter and buffer, gathering FSDP2 shards (call it on every rank)."""
    from torch.distributed.tensor import DTensor

    state = {}
    for name, value in module.state_dict().items():
        if isinstance(value, DTensor):
            value = value.full_tensor()
        state[name] = value.detach().cpu().contiguous()
    return state


def export_encoder(
    encoder: nn.Module,
    backbone_config,
    encoder_config,
    image_size,
    directory: str | Path,
    write: bool = True,
    input_kind: str = "images",
) -> Path:
    """Write ``encoder.safetensors`` and ``encoder.json`` into ``directory``; returns the JSON path.

    Under FSDP2 every rank must call this (shards are gathered collectively); pass ``write`` True on one.
    ``input_kind``: what the encoder was trained to see, ``images`` or ``depth`` (``psfm.encoders.inputs``).
    """
    check_input(input_kind)
    from safetensors.torch import save

    directory = Path(directory)
    state = full_state_dict(encoder)
    if not write:
        return directory / "encoder.json"
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_open(directory / "encoder.safetensors", "wb") as handle:
        handle.write(save(state))
    backbone = {**asdict(backbone_config), "checkpoint": None, "require_checkpoint": False}  # weights are in the export
    record = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "backbone": backbone,
        "encoder": asdict(encoder_config),
        "image_size": list(image_size),
        "input": input_kind,
        "num_tokens": encoder.latent.num_latents,
        "dim": encoder.latent.dim,
    }
    atomic_write_json(directory / "encoder.json", record)
    return directory / "encoder.json"


class FrozenSpatialEncoder(nn.Module):
    """The frozen-encoder boundary downstream code sees: no gradients, eval mode, no-grad forward.

    ``forward(images [B, C, 3, H, W] in [0, 1]) -> latents [B, num_tokens, dim]``. An encoder whose
    ``input_kind`` is ``depth`` takes ``psfm.encoders.inputs.depth_as_image(depth [B, C, 1, H, W] metres)``.
    """

    def __init__(self, encoder: nn.Module, image_size: tuple[int, int], input_kind: str = "images"):
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.image_size = tuple(image_size)
        self.input_kind = check_input(input_kind)
        self.eval()

    @property
    def num_tokens(self) -> int:
        return self.encoder.num_tokens

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def train(self, mode: bool = True) -> FrozenSpatialEncoder:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.to(self.device, self.dtype)).latents


MAX_RECORD_BYTES = 1 << 20
EXPECTED = "psfm.load expects an export folder holding encoder.json + encoder.safetensors, or that encoder.json"


def read_export(path: str | Path) -> tuple[dict, Path]:
    """The checked ``encoder.json`` record of an export folder (or the file itself) and its path.

    Raises:
        MissingPathError: no such folder or file.
        UsageError: a file that is not an export record (random bytes, a training checkpoint, other JSON),
            named with what ``psfm.load`` expects.
    """
    path = Path(path)
    record_path = path / "encoder.json" if path.is_dir() else path
    if not record_path.is_file():
        raise MissingPathError(f"{record_path}: no psfm encoder export here ({EXPECTED})")
    if _is_torch_archive(record_path):  # refused before reading: a checkpoint can be gigabytes
        raise UsageError(f"{record_path}: a training checkpoint, not an export: load <run_dir>/export ({EXPECTED})")
    record = _json_object(record_path)
    if record is None:
        raise UsageError(f"{record_path}: not an encoder.json ({EXPECTED})")
    if record.get("format") != EXPORT_FORMAT or record.get("version") != EXPORT_VERSION:
        raise UsageError(f"{record_path}: not a {EXPORT_FORMAT} v{EXPORT_VERSION} export ({EXPECTED})")
    return record, record_path


def _json_object(path: Path) -> dict | None:
    """The file's JSON object; ``None`` for anything else (binary, weights, a JSON list), large files unread."""
    if path.stat().st_size > MAX_RECORD_BYTES:
        return None
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _is_torch_archive(path: Path) -> bool:
    """A zip archive is what ``torch.save`` writes: a Lightning checkpoint given where an export belongs."""
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def _weights_of(record_path: Path) -> Path:
    weights = record_path.with_suffix(".safetensors")
    if not weights.is_file():
        raise MissingPathError(f"{weights}: missing beside {record_path.name} ({EXPECTED})")
    return weights


def build_from_record(record: dict) -> nn.Module:
    """A ``SpatialEncoder`` of the export's architecture at random init (weights not loaded)."""
    from psfm.encoders.build import build_encoder
    from psfm.encoders.config import BackboneConfig, EncoderConfig

    # exports written before the reference-view mark existed have no such key and no such weight
    encoder_record = {"reference_view": False, **record["encoder"]}
    return build_encoder(BackboneConfig(**record["backbone"]), EncoderConfig(**encoder_record))


def load(path: str | Path, device: str | torch.device = "cpu") -> FrozenSpatialEncoder:
    """Rebuild a frozen encoder from an export folder (or its ``encoder.json``)."""
    from safetensors.torch import load_file

    record, record_path = read_export(path)
    weights = _weights_of(record_path)
    encoder = build_from_record(record)
    state = load_file(str(weights))
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights}: does not match {record_path} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return FrozenSpatialEncoder(encoder.to(device), record["image_size"], record.get("input", "images"))


def random_init_twin(path: str | Path, seed: int = 0, device: str | torch.device = "cpu") -> FrozenSpatialEncoder:
    """The export's architecture at a seeded random init: the baseline every trained encoder must beat.

    What PSFM trained is re-drawn; what it did not train is kept: a *frozen* backbone (e.g. a
    pretrained DINOv2 or VGGT) keeps the export's weights, so the twin isolates what PSFM learned.
    """
    from safetensors.torch import load_file

    record, record_path = read_export(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_from_record(record)
    if record["backbone"].get("frozen"):
        state = load_file(str(_weights_of(record_path)))
        encoder.backbone.load_state_dict(
            {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        )
    return FrozenSpatialEncoder(encoder.to(device), record["image_size"], record.get("input", "images"))
