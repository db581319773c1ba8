"""Chat-formatted supervised examples for a VLM: prompt tokens, answer-only labels, expanded placeholders.

A question from ``psfm qa`` becomes the chat ``[user: "<image>" per shown view + question, assistant:
answer]`` in the tokenizer's own chat template. Each ``<image>`` (one added special token) is expanded
into ``tokens_per_image`` placeholder ids, the positions ``MiniVLM`` fills with visual tokens; with a
``PrependAdapter`` the user turn starts with ``<scene>`` expanded into one placeholder per latent.
Labels are the answer's tokens (the template's end-of-turn included); everything else is ``-100``.

Sequences longer than ``max_length`` lose tokens from the *start* (never the answer); image
placeholders cut there take their feature rows with them, and the cut is counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
IMAGE_TOKEN, SCENE_TOKEN = "<image>", "<scene>"


def add_placeholder_tokens(tokenizer: Any, language_model: Any | None = None) -> tuple[int, int]:
    """Add ``<image>`` and ``<scene>`` as special tokens (once); grow the model's embeddings to match.

    Returns their ids. Their embedding rows are never read: the placeholders' embeddings are replaced.
    """
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN, SCENE_TOKEN]})
    if language_model is not None and language_model.get_input_embeddings().num_embeddings < len(tokenizer):
        language_model.resize_token_embeddings(len(tokenizer))
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), tokenizer.convert_tokens_to_ids(SCENE_TOKEN)


@dataclass
class ChatExample:
    """input_ids / labels [T]; image_rows: which rows of the question's visual features (per image token,
    in order) survive truncation, as (image index, token index) pairs."""

    input_ids: list[int]
    labels: list[int]
    image_rows: list[tuple[int, int]]
    prompt_length: int


@dataclass
class ChatFormatter:
    """tokenizer: a Hugging Face tokenizer with a chat template and the placeholders of ``add_placeholder_tokens``.

    Args:
        tokens_per_image: visual tokens per shown view.
        num_scene_tokens: ``<scene>`` placeholders (one per latent) for a PrependAdapter; 0 = none.
        max_length: the longest sequence kept (prompt + answer).
    """

    tokenizer: Any
    tokens_per_image: int
    num_scene_tokens: int = 0
    max_length: int = 1024
    truncated: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.image_id = self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.scene_id = self.tokenizer.convert_tokens_to_ids(SCENE_TOKEN)
        if self.image_id == self.tokenizer.unk_token_id or self.image_id is None:
            raise ValueError("the tokenizer has no <image> token: call add_placeholder_tokens(tokenizer, model) first")

    def user_turn(self, question: str, num_images: int) -> str:
        scene = SCENE_TOKEN + "\n" if self.num_scene_tokens else ""
        return scene + "".join(IMAGE_TOKEN + "\n" for _ in range(num_images)) + question

    def _ids(self, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def example(self, question: str, num_images: int, answer: str | None) -> ChatExample:
        """The training example (``answer`` given) or the generation prompt (``answer=None``)."""
        user = [{"role": "user", "content": self.user_turn(question, num_images)}]
        prompt = self._ids(user, generation_prompt=True)
        full = prompt if answer is None else self._ids([*user, {"role": "assistant", "content": answer}], False)
        if full[: len(prompt)] != prompt:
            raise ValueError("the chat template's prompt is not a prefix of prompt + answer: cannot mask the prompt")
        if prompt.count(self.image_id) != num_images:
            raise ValueError(f"{prompt.count(self.image_id)} <image> tokens in the prompt for {num_images} images")
        ids, labels, rows, image = [], [], [], 0
        for position, token in enumerate(full):
            copies = 1
            if token == self.image_id:
                copies = self.tokens_per_image
                rows += [(image, index) for index in range(copies)]
                image += 1
            elif token == self.scene_id and self.num_scene_tokens:
                copies = self.num_scene_tokens
            label = IGNORE if position < len(prompt) else token
            ids += [token] * copies
            labels += [label] * copies
        prompt_length = len(ids) - (len(full) - len(prompt))
        return self._truncate(ChatExample(ids, labels, rows, prompt_length))

    def _truncate(self, example: ChatExample) -> ChatExample:
        cut = len(example.input_ids) - self.max_length
        if cut <= 0:
            return example
        if cut >= example.prompt_length:
            raise ValueError(f"the answer alone is longer than max_length={self.max_length}")
        self.truncated["sequences"] += 1
        self.truncated["tokens"] += cut
        dropped = example.input_ids[:cut].count(self.image_id)
        self.truncated["image_tokens"] += dropped
        scene_cut = example.input_ids[:cut].count(self.scene_id) if self.num_scene_tokens else 0
        if scene_cut:
            raise ValueError(f"max_length={self.max_length} would cut the scene tokens: raise it")
        return ChatExample(
            example.input_ids[cut:], example.labels[cut:], example.image_rows[dropped:], example.prompt_length - cut
        )
