"""Tiny randomly-initialised VLMs of every class ``AdaptedVLM`` supports, with batches of different image counts.

Each builder returns ``TinyVLM``: the model, its hidden width, the batched inputs of samples holding
``IMAGES_PER_SAMPLE`` images each (left-padded, as for generation) and each sample's inputs alone, so a
test can check that the batch gives what every sample gives alone. Every image becomes
``TOKENS_PER_IMAGE`` visual tokens; every sample has text before its first image (which an adapter
at the visual tokens must not change: the models are causal) and after its last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from psfm.adapters.mini_vlm import MiniVLM

HIDDEN, VOCAB, PAD = 64, 300, 0
IMAGE_ID, VIDEO_ID, START_ID, END_ID, SCENE_ID = 290, 291, 292, 293, 294
TOKENS_PER_IMAGE = 4
IMAGES_PER_SAMPLE = (1, 3, 2)  # frames differ per sample
TEXT = dict(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=VOCAB)
LLAMA_TEXT = dict(model_type="llama", num_key_value_heads=2, pad_token_id=PAD, **TEXT)


@dataclass
class TinyVLM:
    model: nn.Module
    batch: dict[str, torch.Tensor]
    alone: list[dict[str, torch.Tensor]]
    prefix: int = 3  # text tokens before each sample's first image
    extra: dict = field(default_factory=dict)


def text_ids(generator: torch.Generator, count: int) -> list[int]:
    return torch.randint(1, 200, (count,), generator=generator).tolist()


def prompt(generator: torch.Generator, images: int, per_image: list[int], prefix: int = 3) -> list[int]:
    """[text, (image tokens, text) x images, text]; ``per_image`` is what one image's tokens look like."""
    ids = text_ids(generator, prefix)
    for _ in range(images):
        ids += per_image + text_ids(generator, 2)
    return ids + text_ids(generator, 3)


def left_pad(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(map(len, sequences))
    ids = torch.full((len(sequences), longest), PAD)
    mask = torch.zeros(len(sequences), longest, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, longest - len(sequence) :], mask[row, longest - len(sequence) :] = torch.tensor(sequence), 1
    return ids, mask


def with_labels(inputs: dict[str, torch.Tensor], placeholders: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Labels = the text tokens (placeholders and padding not scored)."""
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    labels = labels.masked_fill(torch.isin(labels, torch.tensor(placeholders)), -100)
    return {**inputs, "labels": labels}


def qwen2_5_vl(counts: tuple[int, ...] = IMAGES_PER_SAMPLE) -> TinyVLM:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config=dict(num_key_value_heads=2, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, **TEXT),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=HIDDEN, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[1], window_size=56,
        ),  # fmt: skip
        image_token_id=IMAGE_ID, video_token_id=VIDEO_ID, vision_start_token_id=START_ID, vision_end_token_id=END_ID,
        pad_token_id=PAD, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(1)
    per_image = [START_ID] + [IMAGE_ID] * TOKENS_PER_IMAGE + [END_ID]
    sequences = [prompt(generator, count, per_image) for count in counts]
    pixels = [torch.randn(count * 16, 3 * 2 * 14 * 14, generator=generator) for count in counts]  # 56 px: 4x4 patches
    grids = [torch.tensor([[1, 4, 4]] * count) for count in counts]

    def inputs(rows: list[int]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([sequences[row] for row in rows])
        pixel_values = torch.cat([pixels[row] for row in rows])
        grid = torch.cat([grids[row] for row in rows])
        return with_labels(
            dict(input_ids=ids, attention_mask=mask, pixel_values=pixel_values, image_grid_thw=grid), (IMAGE_ID,)
        )

    return TinyVLM(model, inputs(list(range(len(counts)))), [inputs([row]) for row in range(len(counts))])


def llava(counts: tuple[int, ...] = IMAGES_PER_SAMPLE) -> TinyVLM:
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    config = LlavaConfig(
        text_config=LLAMA_TEXT,
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),  # fmt: skip
        image_token_id=IMAGE_ID,
        pad_token_id=PAD,
    )
    model = LlavaForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(1)
    sequences = [prompt(generator, count, [IMAGE_ID] * TOKENS_PER_IMAGE) for count in counts]  # 28 px: 2x2 patches
    pixels = [torch.randn(count, 3, 28, 28, generator=generator) for count in counts]

    def inputs(rows: list[int]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([sequences[row] for row in rows])
        pixel_values = torch.cat([pixels[row] for row in rows])
        return with_labels(dict(input_ids=ids, attention_mask=mask, pixel_values=pixel_values), (IMAGE_ID,))

    return TinyVLM(model, inputs(list(range(len(counts)))), [inputs([row]) for row in range(len(counts))])


def _idefics3_like(config_class: Callable, model_class: Callable, counts: tuple[int, ...]) -> TinyVLM:
    torch.manual_seed(0)
    config = config_class(
        text_config=LLAMA_TEXT,
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
        ),  # fmt: skip
        image_token_id=IMAGE_ID,
        scale_factor=2,
        pad_token_id=PAD,
    )
    model = model_class(config).eval()
    generator = torch.Generator().manual_seed(1)
    sequences = [prompt(generator, count, [IMAGE_ID] * TOKENS_PER_IMAGE) for count in counts]  # 16 patches / 2²
    pixels = [torch.rand(count, 3, 56, 56, generator=generator) + 0.1 for count in counts]  # never all-zero

    def inputs(rows: list[int]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([sequences[row] for row in rows])
        most = max(len(pixels[row]) for row in rows)
        pixel_values = torch.zeros(len(rows), most, 3, 56, 56)  # all-zero images are padding to Idefics3
        for slot, row in enumerate(rows):
            pixel_values[slot, : len(pixels[row])] = pixels[row]
        return with_labels(dict(input_ids=ids, attention_mask=mask, pixel_values=pixel_values), (IMAGE_ID,))

    return TinyVLM(model, inputs(list(range(len(counts)))), [inputs([row]) for row in range(len(counts))])


def idefics3(counts: tuple[int, ...] = IMAGES_PER_SAMPLE) -> TinyVLM:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    return _idefics3_like(Idefics3Config, Idefics3ForConditionalGeneration, counts)


def smolvlm(counts: tuple[int, ...] = IMAGES_PER_SAMPLE) -> TinyVLM:
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    return _idefics3_like(SmolVLMConfig, SmolVLMForConditionalGeneration, counts)


FEATURE_DIM = 12


def mini_vlm(counts: tuple[int, ...] = IMAGES_PER_SAMPLE) -> TinyVLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**{key: value for key, value in LLAMA_TEXT.items() if key != "model_type"})
    model = MiniVLM(LlamaForCausalLM(config), FEATURE_DIM, IMAGE_ID).eval()
    generator = torch.Generator().manual_seed(1)
    sequences = [prompt(generator, count, [IMAGE_ID] * TOKENS_PER_IMAGE) for count in counts]
    features = [torch.randn(count * TOKENS_PER_IMAGE, FEATURE_DIM, generator=generator) for count in counts]

    def inputs(rows: list[int]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([sequences[row] for row in rows])
        image_features = torch.cat([features[row] for row in rows])
        return with_labels(dict(input_ids=ids, attention_mask=mask, image_features=image_features), (IMAGE_ID,))

    return TinyVLM(model, inputs(list(range(len(counts)))), [inputs([row]) for row in range(len(counts))])


BUILDERS: dict[str, Callable[..., TinyVLM]] = {
    "Qwen2_5_VLForConditionalGeneration": qwen2_5_vl,
    "LlavaForConditionalGeneration": llava,
    "Idefics3ForConditionalGeneration": idefics3,
    "SmolVLMForConditionalGeneration": smolvlm,
    "MiniVLM": mini_vlm,
}
