"""Supervised fine-tuning of an adapted VLM on spatial QA: batches, the Lightning module, greedy answers.

A batch is what ``AdaptedVLM(MiniVLM)`` takes: left-padded ``input_ids`` / ``attention_mask`` / ``labels``
(answer tokens only), ``image_features`` [N, F] (one row per image placeholder, in reading order) and
the scene ``latents`` [B, L, D] + ``latent_mask`` (absent for the no-adapter arm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import torch
from torch import nn

from psfm.adapters.chat import IGNORE, ChatFormatter
from psfm.adapters.qa_items import QAItem
from psfm.progress import track


def collate(items: Sequence[QAItem], formatter: ChatFormatter, pad_id: int, answers: bool = True) -> dict:
    """QA items -> one batch (``answers=False``: generation prompts, no labels)."""
    examples = [
        formatter.example(item.question.question, len(item.question.views), item.question.answer if answers else None)
        for item in items
    ]
    longest = max(len(example.input_ids) for example in examples)
    ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(items), longest), IGNORE, dtype=torch.long)
    mask = torch.zeros(len(items), longest, dtype=torch.long)
    features = []
    for row, (item, example) in enumerate(zip(items, examples, strict=True)):
        start = longest - len(example.input_ids)  # left padding: every prompt ends where generation starts
        ids[row, start:] = torch.tensor(example.input_ids)
        labels[row, start:] = torch.tensor(example.labels)
        mask[row, start:] = 1
        features += [item.visual[image, token] for image, token in example.image_rows]
    batch = {"input_ids": ids, "attention_mask": mask, "image_features": torch.stack(features) if features else None}
    if answers:
        batch["labels"] = labels
    if items[0].latents is not None:
        most = max(len(item.latents) for item in items)
        latents = torch.zeros(len(items), most, items[0].latents.shape[-1])
        latent_mask = torch.zeros(len(items), most, dtype=torch.bool)
        for row, item in enumerate(items):
            latents[row, : len(item.latents)], latent_mask[row, : len(item.latents)] = item.latents, True
        batch |= {"latents": latents, "latent_mask": latent_mask}
    return batch


class AdaptModule(L.LightningModule):
    """Trains what ``model`` marks trainable (adapter, projector, LoRA, ...) with AdamW, warmup + cosine.

    Args:
        model: an ``AdaptedVLM`` or a bare ``MiniVLM`` (the no-adapter arm).
        lr, weight_decay: AdamW's; warmup_fraction: share of ``total_steps`` warming up linearly.
        total_steps: the schedule's length (the trainer's ``max_steps``).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_fraction: float = 0.03,
        total_steps: int = 1000,
    ):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup_fraction, self.total_steps = (
            lr,
            weight_decay,
            warmup_fraction,
            total_steps,
        )

    def forward(self, batch: dict):
        return self.model(**batch)

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        loss = self(batch).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def configure_optimizers(self):
        params = [param for param in self.model.parameters() if param.requires_grad]
        if not params:
            raise ValueError("nothing to train: every parameter of the model is frozen")
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        warmup = max(1, int(self.warmup_fraction * self.total_steps))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, self.total_steps - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@torch.no_grad()
def answer_questions(
    model: nn.Module,
    items: Sequence[QAItem],
    formatter: ChatFormatter,
    tokenizer,
    batch_size: int = 8,
    max_new_tokens: int = 8,
    progress: bool = True,
) -> dict[str, str]:
    """Greedy answers {question id: text} (the generated tokens up to end of turn, special tokens dropped)."""
    model.eval()
    answers = {}
    starts = range(0, len(items), batch_size)
    for start in track(starts, len(starts), "answering", "batches", enabled=progress):
        chunk = items[start : start + batch_size]
        batch = collate(chunk, formatter, tokenizer.pad_token_id, answers=False)
        prompt_length = batch["input_ids"].shape[1]
        tokens = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        for item, row in zip(chunk, tokens[:, prompt_length:], strict=True):
            answers[item.question.id] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return answers
