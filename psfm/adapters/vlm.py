"""``AdaptedVLM``: attach an adapter to a vision-language model without copying its forward code.

Every supported VLM embeds the prompt, writes its visual tokens into the embeddings at the positions
of its image (and video) placeholder tokens, then runs its language model on ``inputs_embeds``. The
wrapper finds those positions from the ``input_ids`` of each call (or, given embeddings, by matching
the placeholder's embedding, as Hugging Face does) and edits the hidden states there with forward
pre-hooks: on the language model's input (``inject="input"``, the Spa3-VLM placement) or on decoder
layer ``k`` (``inject=k``). The VLM's own code runs unchanged, generation and KV caches included; a
decoding step has no placeholder and passes through untouched.

Two adapters plug in:

- ``SpatialAdapter`` (default): the visual tokens of each sample are gathered into [B, Q, E] (Q = that
  sample's count, padded), read the latents, and are scattered back. No token is added.
- ``PrependAdapter`` (ablation): the prompt carries one ``scene_token_id`` placeholder per latent; their
  embeddings are replaced by the projected latents, so the language model reads the scene as tokens.

What trains is set here, once: the vision tower is frozen (and kept in eval mode), the language model
is ``frozen``, ``lora`` (peft) or ``full``, its connector (the VLM's own projector from vision to text)
trains when ``train_connector`` says so, and the adapter always trains. The psfm encoder is not part
of this module: latents come in from ``psfm.load`` (a frozen, no-grad boundary), cached or live.

Which classes are supported, and how to add one, is ``VLM_LAYOUTS`` / ``register_vlm_layout``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from psfm.adapters.masks import padding_mask
from psfm.adapters.prepend_adapter import PrependAdapter
from psfm.adapters.spatial_adapter import SpatialAdapter

LLMMode = Literal["frozen", "lora", "full"]
LLM_MODES = ("frozen", "lora", "full")


@dataclass(frozen=True)
class VLMLayout:
    """Where one VLM class keeps what the wrapper needs; every path is an attribute path from the top model.

    Args:
        language_model: the decoder stack called with ``inputs_embeds`` (the injection point ``"input"``).
        vision: modules that make visual features; always frozen and in eval mode.
        connector: the VLM's own vision-to-text projector; trained when ``train_connector`` is set.
        layers: the decoder layers, relative to ``language_model`` (the injection points ``0..N-1``).
        token_fields: config fields holding the ids of the visual placeholder tokens (those present count).
        lora_targets: module names LoRA adapts inside the language model.
    """

    language_model: str
    vision: tuple[str, ...]
    connector: tuple[str, ...] = ()
    layers: str = "layers"
    token_fields: tuple[str, ...] = ("image_token_id", "image_token_index", "video_token_id")
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


_QWEN_VL = VLMLayout("model.language_model", vision=("model.visual",))
_IDEFICS3 = VLMLayout("model.text_model", vision=("model.vision_model",), connector=("model.connector",))
VLM_LAYOUTS: dict[str, VLMLayout] = {
    "Qwen2_5_VLForConditionalGeneration": _QWEN_VL,  # Spa3-VLM's base
    "LlavaForConditionalGeneration": VLMLayout(
        "model.language_model", vision=("model.vision_tower",), connector=("model.multi_modal_projector",)
    ),
    "Idefics3ForConditionalGeneration": _IDEFICS3,
    "SmolVLMForConditionalGeneration": _IDEFICS3,
    "MiniVLM": VLMLayout(  # psfm.adapters.mini_vlm: the offline demo (a causal LM + frozen image features)
        "language_model", vision=(), connector=("projector",), layers="model.layers", token_fields=("image_token_id",)
    ),
}


def register_vlm_layout(class_name: str, layout: VLMLayout) -> None:
    """Support another VLM class: name its language model, vision modules and placeholder-token fields.

    The class must embed its prompt, write visual tokens at placeholder positions and call its language
    model with ``inputs_embeds=`` (every Hugging Face VLM listed in ``VLM_LAYOUTS`` does).
    """
    VLM_LAYOUTS[class_name] = layout


def vlm_layout(vlm: nn.Module) -> VLMLayout:
    """The layout of ``vlm``'s class (or of the nearest registered base class).

    Raises:
        ValueError: an unknown class, with the supported ones and how to add one.
    """
    for cls in type(vlm).__mro__:
        if cls.__name__ in VLM_LAYOUTS:
            return VLM_LAYOUTS[cls.__name__]
    raise ValueError(
        f"no adapter layout for VLM class {type(vlm).__name__}; supported: {', '.join(sorted(VLM_LAYOUTS))}. "
        "Add one with psfm.adapters.vlm.register_vlm_layout(class_name, VLMLayout(language_model=..., vision=...))"
    )


def submodule(root: nn.Module, path: str) -> nn.Module:
    """``root.a.b`` for ``path='a.b'``, with an error naming the missing step."""
    module = root
    for step in path.split("."):
        if not hasattr(module, step):
            raise ValueError(f"{type(root).__name__} has no module at {path!r} (no {step!r}): is its layout right?")
        module = getattr(module, step)
    return module


def placeholder_ids(vlm: nn.Module, layout: VLMLayout) -> list[int]:
    """The visual placeholder token ids named by ``layout.token_fields`` in ``vlm.config``."""
    config = vlm.config
    ids = [getattr(config, field, None) for field in layout.token_fields]
    ids = [int(value) for value in ids if value is not None]
    if not ids:
        raise ValueError(f"{type(vlm).__name__}.config has none of {layout.token_fields}: no visual placeholder id")
    return sorted(set(ids))


def gather_positions(hidden: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tokens at ``positions`` [B, T] (bool) of ``hidden`` [B, T, E], per sample, in sequence order.

    Returns:
        tokens [B, Q, E] (Q = the largest count; a sample's padding holds other tokens of its own
        sequence, unchanged by the adapters), mask [B, Q] (True = a real placeholder position), index [B, Q]
        (where each came from, distinct within a row, for ``hidden.scatter``).
    """
    counts = positions.sum(dim=1)
    order = torch.argsort((~positions).to(torch.int8), dim=1, stable=True)  # placeholders first, in order
    index = order[:, : int(counts.max())]
    mask = torch.arange(index.shape[1], device=hidden.device) < counts[:, None]
    return hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1])), mask, index


def scatter_positions(hidden: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``hidden`` with ``tokens`` [B, Q, E] written back at ``index`` [B, Q] (the inverse of ``gather_positions``)."""
    return hidden.scatter(1, index[..., None].expand(-1, -1, hidden.shape[-1]), tokens.to(hidden.dtype))


class AdaptedVLM(nn.Module):
    """A VLM with an adapter feeding it the frozen psfm encoder's latents.

    ``forward(latents=..., latent_mask=..., **vlm_inputs)`` and ``generate(...)`` take the VLM's own inputs
    (``input_ids``, ``attention_mask``, ``pixel_values``, ``labels``, ...) plus the scene latents [B, L, D]
    (padded; a sample may concatenate several scenes along L) and their mask [B, L]. Without latents the
    VLM runs exactly as it would alone.

    Args:
        vlm: a model of a class in ``VLM_LAYOUTS`` (e.g. ``Qwen2_5_VLForConditionalGeneration``).
        adapter: a ``SpatialAdapter`` (hidden_dim = the language model's width) or ``PrependAdapter``; None:
            no adapter, only the training setup (the control arm: the same parts train, no scene).
        inject: ``"input"`` (the embeddings, before the language model) or a decoder-layer index
            (``SpatialAdapter`` only; the visual positions are the same at every layer).
        llm: the language model ``frozen``, with ``lora`` adapters (peft), or ``full``y trained.
        train_connector: train the VLM's vision-to-text connector; default: only when ``llm="full"``.
        scene_token_id: the placeholder id whose positions receive ``PrependAdapter``'s tokens.
        lora_rank, lora_alpha: LoRA's rank and scale (``llm="lora"``).
    """

    def __init__(
        self,
        vlm: nn.Module,
        adapter: SpatialAdapter | PrependAdapter | None,
        *,
        inject: str | int = "input",
        llm: LLMMode = "frozen",
        train_connector: bool | None = None,
        scene_token_id: int | None = None,
        lora_rank: int = 16,
        lora_alpha: int = 32,
    ):
        super().__init__()
        if llm not in LLM_MODES:
            raise ValueError(f"llm={llm!r}: expected one of {LLM_MODES}")
        self.layout = vlm_layout(vlm)
        self.vlm, self.adapter, self.llm_mode = vlm, adapter, llm
        self.visual_ids = placeholder_ids(vlm, self.layout)
        language_model = submodule(vlm, self.layout.language_model)
        if adapter is not None:
            self._check_widths(adapter, language_model)
        if isinstance(adapter, PrependAdapter):
            if scene_token_id is None:
                raise ValueError("a PrependAdapter needs scene_token_id: the placeholder its latent tokens replace")
            if inject != "input":
                raise ValueError(f"a PrependAdapter writes input tokens; inject={inject!r} needs a SpatialAdapter")
        self.scene_token_id, self.inject = scene_token_id, inject
        self._scene: tuple[torch.Tensor, torch.Tensor] | None = None
        self._positions: torch.Tensor | None = None
        if llm == "lora":
            self._add_lora(language_model, lora_rank, lora_alpha)
        self._set_trainable(language_model, self.llm_mode == "full" if train_connector is None else train_connector)
        if adapter is None:
            return
        vlm.register_forward_pre_hook(self._find_positions, with_kwargs=True)
        if inject == "input":
            language_model.register_forward_pre_hook(self._inject_into_embeddings, with_kwargs=True)
        else:
            layers = submodule(language_model, self.layout.layers)
            if not isinstance(inject, int) or not 0 <= inject < len(layers):
                raise ValueError(f"inject={inject!r}: expected 'input' or a layer index in [0, {len(layers)})")
            layers[inject].register_forward_pre_hook(self._inject_into_layer, with_kwargs=True)

    # ---- what trains ------------------------------------------------------------------------------------------
    def _set_trainable(self, language_model: nn.Module, train_connector: bool) -> None:
        self.vlm.requires_grad_(self.llm_mode == "full")
        if self.llm_mode == "lora":
            for name, param in language_model.named_parameters():
                param.requires_grad_("lora_" in name)
        for path in self.layout.vision:
            submodule(self.vlm, path).requires_grad_(False)
        for path in self.layout.connector:
            submodule(self.vlm, path).requires_grad_(train_connector)
        if self.adapter is not None:
            self.adapter.requires_grad_(True)

    def _add_lora(self, language_model: nn.Module, rank: int, alpha: int) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(self.layout.lora_targets))
        inject_adapter_in_model(config, language_model)

    def train(self, mode: bool = True) -> AdaptedVLM:
        super().train(mode)
        for path in self.layout.vision:  # frozen towers stay deterministic (dropout, batch-norm statistics)
            submodule(self.vlm, path).eval()
        return self

    def trainable_parameters(self) -> dict[str, int]:
        """Trainable parameter counts by part: adapter, language model, connector, other."""
        language_model = submodule(self.vlm, self.layout.language_model)
        parts = [("language_model", language_model)] + ([("adapter", self.adapter)] if self.adapter is not None else [])
        parts += [("connector", submodule(self.vlm, path)) for path in self.layout.connector]
        owner = {id(param): name for name, module in parts for param in module.parameters()}
        counts = dict.fromkeys(["adapter", "language_model", "connector", "other"], 0)
        for param in self.parameters():
            if param.requires_grad:
                counts[owner.get(id(param), "other")] += param.numel()
        return counts

    # ---- forward ----------------------------------------------------------------------------------------------
    def forward(self, latents: torch.Tensor | None = None, latent_mask: torch.Tensor | None = None, **inputs: Any):
        with self._scene_of(latents, latent_mask):
            return self.vlm(**inputs)

    @torch.no_grad()
    def generate(self, latents: torch.Tensor | None = None, latent_mask: torch.Tensor | None = None, **inputs: Any):
        with self._scene_of(latents, latent_mask):
            return self.vlm.generate(**inputs)

    @contextmanager
    def _scene_of(self, latents: torch.Tensor | None, latent_mask: torch.Tensor | None) -> Iterator[None]:
        if latents is not None:
            if self.adapter is None:
                raise ValueError("latents given to an AdaptedVLM without an adapter")
            latent_mask = padding_mask(latent_mask, latents, "latent_mask")
        self._scene = None if latents is None else (latents, latent_mask)
        try:
            yield
        finally:
            self._scene, self._positions = None, None

    def _check_widths(self, adapter: nn.Module, language_model: nn.Module) -> None:
        width = language_model.get_input_embeddings().embedding_dim
        if adapter.hidden_dim != width:
            raise ValueError(
                f"the adapter's hidden_dim is {adapter.hidden_dim} but {type(self.vlm).__name__}'s language model "
                f"is {width} wide: build it with hidden_dim={width}"
            )

    # ---- hooks ------------------------------------------------------------------------------------------------
    def _find_positions(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Before every VLM call: which sequence positions hold visual (or scene) placeholders."""
        if self._scene is None:
            self._positions = None
            return
        wanted = [self.scene_token_id] if isinstance(self.adapter, PrependAdapter) else self.visual_ids
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is not None:
            self._positions = torch.isin(input_ids, torch.tensor(wanted, device=input_ids.device))
            return
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            raise ValueError("the VLM was called with neither input_ids nor inputs_embeds")
        table = submodule(module, self.layout.language_model).get_input_embeddings()
        references = table(torch.tensor(wanted, device=embeds.device)).to(embeds.dtype)  # P E
        self._positions = (embeds[:, :, None, :] == references).all(-1).any(-1)

    def _inject_into_embeddings(self, module: nn.Module, args: tuple, kwargs: dict):
        embeds = kwargs.get("inputs_embeds")
        if embeds is None or self._positions is None:
            return None
        return args, {**kwargs, "inputs_embeds": self._adapt_hidden(embeds)}

    def _inject_into_layer(self, module: nn.Module, args: tuple, kwargs: dict):
        if self._positions is None:
            return None
        if args:
            return (self._adapt_hidden(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": self._adapt_hidden(kwargs["hidden_states"])}

    def _adapt_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        positions = self._positions.to(hidden.device)
        if positions.shape != hidden.shape[:2]:
            raise RuntimeError(
                f"placeholder positions {tuple(positions.shape)} do not match hidden states {tuple(hidden.shape[:2])}"
            )
        if not positions.any():  # a decoding step, or a prompt without images
            return hidden
        latents, latent_mask = self._scene
        if isinstance(self.adapter, PrependAdapter):
            return self._write_scene_tokens(hidden, positions, latents, latent_mask)
        visual, visual_mask, index = gather_positions(hidden, positions)
        return scatter_positions(hidden, self.adapter(visual, latents, visual_mask, latent_mask), index)

    def _write_scene_tokens(
        self, hidden: torch.Tensor, positions: torch.Tensor, latents: torch.Tensor, latent_mask: torch.Tensor
    ) -> torch.Tensor:
        placeholders, real = positions.sum(dim=1), latent_mask.sum(dim=1)
        if not torch.equal(placeholders.cpu(), real.cpu()):
            raise ValueError(
                f"scene placeholders per sample {placeholders.tolist()} != real latents per sample {real.tolist()}: "
                f"the prompt needs one token {self.scene_token_id} per latent"
            )
        prepended = self.adapter(latents, latent_mask)  # tokens B L E, zero at padding
        tokens, _, _ = gather_positions(prepended.tokens, latent_mask)  # real latents first, in order
        _, slots, index = gather_positions(hidden, positions)
        current = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
        tokens = torch.where(slots[..., None], tokens[:, : index.shape[1]].to(hidden.dtype), current)
        return scatter_positions(hidden, tokens, index)
