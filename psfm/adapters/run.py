"""``psfm adapt``'s job: build one arm, train it on QA shards, answer held-out questions, score, write.

One arm = MiniVLM (frozen causal LM + trainable projector over a frozen image tower) with or without
an adapter over a frozen psfm encoder:

    export=null                        no adapter: the VLM alone (arm a)
    export=DIR                         adapter + that encoder (arm b: PSFM; arm d: a per_view export)
    export=DIR encoder=random_init     adapter + the export's architecture at a seeded random init (arm c)

Every arm trains the same parts besides the adapter (the projector, and LoRA when ``llm_mode=lora``)
for the same steps on the same questions, so differences are the adapter's and the encoder's.
Outputs in ``out``: ``trainable.safetensors`` (only what trained), ``adapt.json`` (the config, the
parameter counts, the time each stage took), ``predictions.jsonl``, ``metrics.json`` (``psfm eval``'s
numbers, plus ``single``/``multi``: the questions that need one view or several) and ``report.md``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from psfm.adapters.chat import ChatFormatter, add_placeholder_tokens
from psfm.adapters.mini_vlm import MiniVLM
from psfm.adapters.prepend_adapter import PrependAdapter
from psfm.adapters.qa_items import QAItems, load_qa_items
from psfm.adapters.spatial_adapter import SpatialAdapter
from psfm.adapters.vlm import AdaptedVLM
from psfm.errors import MissingPathError, UsageError
from psfm.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger("psfm.adapt")
ENCODERS = ("trained", "random_init")
ADAPTERS = ("spatial", "prepend")


@dataclass
class TrainerSettings:
    """Lightning Trainer arguments (DDP / FSDP2 / bf16 on GPUs as in pretraining)."""

    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"  # bf16-mixed on GPUs
    log_every_n_steps: int = 10


@dataclass
class AdaptCommand:
    """Schema of ``configs/adapt.yaml``; a misspelled key fails at compose time with its name."""

    train: str = "data/qa/train"  # `psfm qa` output (or its shards/): questions to train on
    val: str = "data/qa/val"  # held-out scenes' questions to answer and score
    export: str | None = None  # psfm.load export; null = no adapter (arm a)
    encoder: str = "trained"  # trained | random_init (the export's architecture at random_init_seed)
    random_init_seed: int = 0
    adapter: str = "spatial"  # spatial (Spa3-VLM: gated cross-attention into the visual tokens) | prepend
    inject: str = "input"  # input | a decoder-layer index (spatial only)
    llm: str = "smollm2"  # smollm2 (packaged, offline) | a local Hugging Face causal-LM folder
    llm_mode: str = "frozen"  # frozen | lora | full
    lora_rank: int = 16
    tower_size: int = 128  # the frozen EfficientNet-Lite0 image tower's input size
    visual_grid: int = 2  # visual tokens per image = visual_grid^2
    max_length: int = 512  # tokens per sequence; longer ones lose their start (counted)
    steps: int = 300  # 0: no training, only answer and score (e.g. with checkpoint=)
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_fraction: float = 0.03
    gradient_checkpointing: bool = False
    max_train_scenes: int | None = None
    max_eval_scenes: int | None = 16
    eval_batch_size: int = 8
    max_new_tokens: int = 8
    bootstrap: int = 1000
    seed: int = 0
    progress: bool = True
    checkpoint: str | None = None  # a run folder or its trainable.safetensors: start from what it trained
    out: str = "outputs/adapt/run"
    compare: str | None = None  # RUN,RUN,...: no training; compare finished runs into out/adapt_report.md
    names: str | None = None  # NAME,NAME,...: the compared arms' names (psfm,none,random_init check the goal)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise UsageError(f"encoder={self.encoder!r}: expected one of {ENCODERS}")
        if self.adapter not in ADAPTERS:
            raise UsageError(f"adapter={self.adapter!r}: expected one of {ADAPTERS}")
        if self.steps < 0 or self.batch_size < 1:
            raise UsageError(f"steps={self.steps} must be >= 0 and batch_size={self.batch_size} >= 1")


def qa_shards(source: str) -> str:
    """A ``psfm qa`` output folder means its ``shards/``."""
    return str(Path(source) / "shards") if (Path(source) / "shards").is_dir() else source


def frozen_encoder(command: AdaptCommand):
    if command.export is None:
        return None
    from psfm.export import load, random_init_twin

    if command.encoder == "random_init":
        return random_init_twin(command.export, command.random_init_seed)
    return load(command.export)


def build_model(command: AdaptCommand, encoder, feature_dim: int):
    """(model, tokenizer, formatter): MiniVLM alone, or wrapped by AdaptedVLM with the chosen adapter."""
    from psfm.adapters.language_models import load_language_model

    language_model, tokenizer = load_language_model(command.llm)
    image_id, scene_id = add_placeholder_tokens(tokenizer, language_model)
    torch.manual_seed(command.seed)
    model = MiniVLM(language_model, feature_dim, image_id)
    if command.gradient_checkpointing:
        language_model.gradient_checkpointing_enable()
    scene_tokens, adapter = 0, None
    if encoder is not None:
        hidden = language_model.get_input_embeddings().embedding_dim
        if command.adapter == "spatial":
            adapter = SpatialAdapter(encoder.dim, hidden, num_heads=language_model.config.num_attention_heads)
        else:
            adapter, scene_tokens = PrependAdapter(encoder.dim, hidden), encoder.num_tokens
    inject = int(command.inject) if command.inject.isdigit() else command.inject
    model = AdaptedVLM(
        model,
        adapter,  # None: the no-adapter arm, with the same parts training
        inject=inject,
        llm=command.llm_mode,
        train_connector=True,
        scene_token_id=scene_id,
        lora_rank=command.lora_rank,
        lora_alpha=2 * command.lora_rank,
    )
    formatter = ChatFormatter(tokenizer, command.visual_grid**2, scene_tokens, command.max_length)
    return model, tokenizer, formatter


def image_tower(command: AdaptCommand):
    from psfm.teachers import build_teacher

    tower = build_teacher("efficientnet_lite0", img_size=command.tower_size)
    grid = (command.visual_grid, command.visual_grid)
    return lambda images: tower.features(images, grid)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().cpu().contiguous() for name, param in model.named_parameters() if param.requires_grad}


def load_trainable(model: torch.nn.Module, checkpoint: str | Path) -> int:
    """Copy a run's ``trainable.safetensors`` into ``model``; returns the number of tensors loaded.

    Raises:
        MissingPathError: no such file.
        UsageError: a tensor the model lacks (another adapter or arm) or of another shape (another
            export's latent dim, another language model), named with both shapes.
    """
    from safetensors.torch import load_file

    path = Path(checkpoint)
    path = path / "trainable.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise MissingPathError(f"checkpoint={checkpoint}: no trainable.safetensors there (a finished psfm adapt run)")
    saved = load_file(str(path))
    params = dict(model.named_parameters())
    unknown = sorted(set(saved) - set(params))
    if unknown:
        raise UsageError(
            f"{path}: {len(unknown)} tensors this model lacks, e.g. {unknown[0]}: trained with another arm?"
        )
    for name, tensor in saved.items():
        if tensor.shape != params[name].shape:
            latent = name.endswith("projector.layers.0.weight") and name.startswith("adapter.")
            hint = " (the adapter was trained on another export's latent dim)" if latent else ""
            raise UsageError(
                f"{path}: {name} is {tuple(tensor.shape)} there but {tuple(params[name].shape)} here{hint}"
            )
        with torch.no_grad():
            params[name].copy_(tensor)
    return len(saved)


def run_adapt(command: AdaptCommand) -> dict:
    """Train one arm and score it; returns the metrics dict (also written to ``out/metrics.json``)."""
    from safetensors.torch import save

    from psfm.adapters.language_models import language_model_files
    from psfm.adapters.sft import answer_questions

    language_model_files(command.llm)  # a missing model fails before minutes of frozen features
    out = Path(command.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    encoder = frozen_encoder(command)
    tower = image_tower(command)
    size = (command.tower_size, command.tower_size)
    val = load_qa_items(
        qa_shards(command.val), tower, size, encoder, command.max_eval_scenes, progress=command.progress,
        description="val features",
    )  # fmt: skip
    train = None
    if command.steps:
        train = load_qa_items(
            qa_shards(command.train), tower, size, encoder, command.max_train_scenes, progress=command.progress,
            description="train features",
        )  # fmt: skip
    timings["frozen_features_s"] = time.perf_counter() - started
    model, tokenizer, formatter = build_model(command, encoder, val.items[0].visual.shape[-1])
    if command.checkpoint:
        log.info("loaded %d trained tensors from %s", load_trainable(model, command.checkpoint), command.checkpoint)
    counts = model.trainable_parameters()
    log.info("trainable parameters: %s; %d val questions", counts, len(val.items))
    if train is not None:
        timings |= train_arm(command, model, train, formatter, tokenizer.pad_token_id, out)
    atomic_write_bytes(out / "trainable.safetensors", save(trainable_state(model)))

    started = time.perf_counter()
    answers = answer_questions(
        model, val.items, formatter, tokenizer, command.eval_batch_size, command.max_new_tokens, command.progress
    )
    timings["answer_s"] = time.perf_counter() - started
    metrics = score_arm(val, answers, command.bootstrap, command.seed)
    # each line carries its question, so `psfm eval predictions=out/predictions.jsonl` re-scores the run alone
    lines = [json.dumps({"id": i.question.id, "prediction": answers[i.question.id], "qa": i.question.to_json()})
             for i in val.items]  # fmt: skip
    atomic_write_bytes(out / "predictions.jsonl", ("\n".join(lines) + "\n").encode())
    record = {
        "command": asdict(command),
        "trainable_parameters": counts,
        "timings": timings,
        "train_questions": 0 if train is None else len(train.items),
        "val_questions": len(val.items),
        "skipped": {"train": {} if train is None else dict(train.skipped), "val": dict(val.skipped)},
        "truncated": dict(formatter.truncated),
    }
    atomic_write_json(out / "adapt.json", record)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_bytes(out / "report.md", arm_report(record, metrics).encode())
    return metrics


def train_arm(command: AdaptCommand, model, train: QAItems, formatter: ChatFormatter, pad_id: int, out: Path) -> dict:
    """``steps`` x ``batch_size`` questions drawn with ``seed`` (the same draw for every arm); returns timings."""
    import lightning as L
    from torch.utils.data import DataLoader

    from psfm.adapters.sft import AdaptModule, collate

    L.seed_everything(command.seed, workers=True)
    order = random.Random(command.seed)
    needed = command.steps * command.batch_size
    chosen = [train.items[order.randrange(len(train.items))] for _ in range(needed)]
    loader = DataLoader(
        chosen, batch_size=command.batch_size, shuffle=False, collate_fn=lambda b: collate(b, formatter, pad_id)
    )
    module = AdaptModule(model, command.lr, command.weight_decay, command.warmup_fraction, command.steps)
    trainer = L.Trainer(
        max_steps=command.steps, logger=L.pytorch.loggers.CSVLogger(out, name="csv"), enable_checkpointing=False,
        enable_progress_bar=command.progress, num_sanity_val_steps=0, **asdict(command.trainer),
    )  # fmt: skip
    model.train()  # Lightning keeps the modes it is given; frozen towers stay in eval (AdaptedVLM.train)
    started = time.perf_counter()
    trainer.fit(module, loader)
    elapsed = time.perf_counter() - started
    return {"train_s": elapsed, "train_s_per_sample": elapsed / needed}


def score_arm(items: QAItems, answers: dict[str, str], bootstrap: int, seed: int) -> dict:
    """``psfm eval``'s metrics for all questions, and for those needing one view / several (``single/``, ``multi/``)."""
    from psfm.qa.scoring import score_all
    from psfm.qa.summary import summarize

    questions = [item.question for item in items.items]
    metrics = summarize(score_all(questions, answers), questions, bootstrap, seed)
    for group in ("single", "multi"):
        subset = [q for q in questions if q.views_needed == group]
        if subset:
            part = summarize(score_all(subset, {q.id: answers.get(q.id) for q in subset}), subset, bootstrap, seed)
            metrics.update({f"{group}/{key}": value for key, value in part.items() if "/" not in key})
    metrics["problems/missing"] = float(sum(answers.get(q.id) is None for q in questions))
    return metrics


def arm_report(record: dict, metrics: dict) -> str:
    command = record["command"]
    arm = "no adapter" if command["export"] is None else f"{command['adapter']} adapter + {command['encoder']} encoder"
    lines = [
        f"# psfm adapt: {arm}",
        "",
        f"export: `{command['export']}`; llm: `{command['llm']}` ({command['llm_mode']}); "
        f"{command['steps']} steps x {command['batch_size']}",
        "",
        "| questions | n | score (%) | 95% CI |",
        "|---|---|---|---|",
    ]
    for label, prefix in (("all", ""), ("single-view", "single/"), ("multi-view", "multi/")):
        if f"{prefix}overall" in metrics:
            low, high = metrics[f"{prefix}overall_ci_low"], metrics[f"{prefix}overall_ci_high"]
            lines.append(
                f"| {label} | {int(metrics[f'{prefix}questions'])} | {100 * metrics[f'{prefix}overall']:.1f} | "
                f"{100 * low:.1f}-{100 * high:.1f} |"
            )
    lines += ["", "| task | n | score (%) |", "|---|---|---|"]
    from psfm.adapters.compare import is_task

    for task in sorted(key[len("task/") :] for key in metrics if is_task(key)):
        lines.append(f"| {task} | {int(metrics[f'task/{task}_count'])} | {100 * metrics[f'task/{task}']:.1f} |")
    timings = record["timings"]
    training = "no training"
    if "train_s" in timings:
        training = f"training {timings['train_s']:.0f} s ({timings['train_s_per_sample']:.2f} s per sample)"
    lines += [
        "",
        f"trainable parameters: {record['trainable_parameters']}",
        f"cost: frozen features {timings['frozen_features_s']:.0f} s, {training}, "
        f"answering {timings['answer_s']:.0f} s",
        "",
    ]
    return "\n".join(lines)
