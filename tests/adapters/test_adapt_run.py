"""``psfm adapt`` end to end on a tiny world with a tiny local language model: chat examples, frozen
features, one arm trained and scored, arms compared. SmolLM2 itself is not needed here (a byte-level
tokenizer with a ChatML template and a 2-layer Llama saved to a folder stand in for it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from psfm.adapters.chat import IGNORE, ChatFormatter, add_placeholder_tokens
from psfm.adapters.compare import compare_arms
from psfm.adapters.qa_items import load_qa_items
from psfm.adapters.run import AdaptCommand, TrainerSettings, qa_shards, run_adapt, score_arm
from psfm.adapters.sft import collate
from psfm.commands.qa import QACommand
from psfm.commands.qa import run as run_qa
from psfm.encoders.build import build_encoder
from psfm.encoders.config import BackboneConfig, EncoderConfig
from psfm.errors import MissingPathError, UsageError
from psfm.export import export_encoder, load
from psfm.worlds.generate import generate_world
from psfm.worlds.sampler import WorldConfig
from tests.probes.test_run import PNG_MAGIC, write_export

transformers = pytest.importorskip("transformers")
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer():
    """A byte-level tokenizer (256 tokens, no merges) with ChatML's two special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={char: index for index, char in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def read_rgb(path: Path) -> torch.Tensor:
    """[3, H, W] in [0, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1).float() / 255


def write_language_model(folder: Path) -> str:
    tokenizer = byte_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("adapt")
    config = WorldConfig(views_per_scene=4, height=32, width=32)
    for split, count in (("train", 3), ("val", 2)):
        generate_world(root / "world" / split, config, count, split, 4, progress=False)
        run_qa(QACommand(data=str(root / "world" / split), out=str(root / "qa" / split)))
    return {
        "train": str(root / "qa" / "train"),
        "val": str(root / "qa" / "val"),
        "export": write_export(root / "export", seed=1),
        "llm": write_language_model(root / "llm"),
        "root": str(root),
    }


def tiny_command(setup: dict, out: str, **changes) -> AdaptCommand:
    settings = dict(
        train=setup["train"], val=setup["val"], llm=setup["llm"], tower_size=32, visual_grid=1, steps=3, batch_size=2,
        max_eval_scenes=1, max_new_tokens=3, bootstrap=20, progress=False, out=out, max_length=2048,
    )  # fmt: skip
    return AdaptCommand(**{**settings, "trainer": TrainerSettings(accelerator="cpu"), **changes})


@pytest.fixture
def formatter():
    tokenizer = byte_tokenizer()
    add_placeholder_tokens(tokenizer)
    return ChatFormatter(tokenizer, tokens_per_image=3)


def test_only_the_answer_is_scored_and_each_image_becomes_its_visual_tokens(formatter):
    tokenizer = formatter.tokenizer
    example = formatter.example("How far apart are they?", num_images=2, answer="2.5")
    assert example.input_ids.count(formatter.image_id) == 6
    assert example.image_rows == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    scored = [token for token, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(scored) == "2.5<|im_end|>\n"
    assert all(label == IGNORE for label in example.labels[: example.prompt_length])
    prompt = formatter.example("How far apart are they?", num_images=2, answer=None)
    assert prompt.input_ids == example.input_ids[: example.prompt_length]
    assert tokenizer.decode(prompt.input_ids).endswith("<|im_start|>assistant\n")


def test_long_sequences_lose_their_start_and_the_cut_images_rows(formatter):
    whole = formatter.example("Which is closer?", num_images=2, answer="A")
    formatter.max_length = len(whole.input_ids) - 5  # the first image's tokens sit after the template's header
    cut = formatter.example("Which is closer?", num_images=2, answer="A")
    assert len(cut.input_ids) == formatter.max_length and cut.labels[-3:] == whole.labels[-3:]
    assert formatter.truncated == {"sequences": 1, "tokens": 5, "image_tokens": 0}
    first_image = whole.input_ids.index(formatter.image_id)
    formatter.max_length = len(whole.input_ids) - first_image - 2  # cuts 2 of the first image's 3 tokens
    cut = formatter.example("Which is closer?", num_images=2, answer="A")
    assert cut.image_rows == [(0, 2), (1, 0), (1, 1), (1, 2)]
    assert cut.input_ids.count(formatter.image_id) == 4
    formatter.max_length = 3
    with pytest.raises(ValueError, match="answer alone is longer than max_length=3"):
        formatter.example("Which is closer?", num_images=2, answer="A much longer answer")


def test_a_prepend_prompt_carries_one_scene_token_per_latent():
    tokenizer = byte_tokenizer()
    add_placeholder_tokens(tokenizer)
    formatter = ChatFormatter(tokenizer, tokens_per_image=2, num_scene_tokens=7)
    example = formatter.example("Count the chairs.", num_images=1, answer="3")
    assert example.input_ids.count(formatter.scene_id) == 7
    assert example.input_ids.index(formatter.scene_id) < example.input_ids.index(formatter.image_id)


def test_frozen_features_are_the_question_views_through_the_tower_and_the_encoder(setup):
    encoder = load(setup["export"])
    seen = []

    def tower(images: torch.Tensor) -> torch.Tensor:  # [M, 3, H, W] -> [M, 1, 3]: the images' mean colour
        seen.append(images.shape)
        return images.mean(dim=(2, 3))[:, None]

    items = load_qa_items(qa_shards(setup["val"]), tower, (32, 32), encoder, progress=False)
    assert items.scenes == 2 and all(shape[1:] == (3, 32, 32) for shape in seen)
    records = [json.loads(line) for line in (Path(setup["val"]) / "questions.jsonl").read_text().splitlines()]
    by_id = {record["id"]: record for record in records}
    assert {item.question.id for item in items.items} == {r["id"] for r in records if r["qa"]["views"]}
    for item in items.items[:: max(1, len(items.items) // 6)]:
        paths = by_id[item.question.id]["images"]  # the exported view files, read with PIL
        images = torch.stack([read_rgb(Path(setup["val"]) / path) for path in paths])
        assert item.visual.shape == (len(paths), 1, 3)
        torch.testing.assert_close(item.visual[:, 0], images.mean(dim=(2, 3)), atol=2e-3, rtol=0)
        torch.testing.assert_close(item.latents, encoder(images[None])[0], atol=1e-4, rtol=1e-4)


def test_a_batch_pads_left_and_keeps_features_in_reading_order(setup, formatter):
    items = load_qa_items(qa_shards(setup["val"]), lambda im: im[:, :2, :2, 0].flatten(1)[:, None].repeat(1, 3, 1),
                          (32, 32), load(setup["export"]), progress=False).items  # fmt: skip
    chosen = sorted(items, key=lambda item: len(item.question.views))[-1:] + items[:2]
    batch = collate(chosen, formatter, formatter.tokenizer.pad_token_id)
    mask = batch["attention_mask"].bool()
    assert mask[:, -1].all() and not mask.all()  # left padding, prompts end together
    assert batch["image_features"].shape[0] == (batch["input_ids"] == formatter.image_id).sum()
    expected = torch.cat([item.visual.flatten(0, 1) for item in chosen])  # image by image, token by token
    assert torch.equal(batch["image_features"], expected)
    assert batch["latent_mask"].sum(1).tolist() == [len(item.latents) for item in chosen]
    assert (batch["labels"][~mask] == IGNORE).all()


@pytest.fixture(scope="module")
def arms(setup) -> dict[str, str]:
    root = Path(setup["root"])
    runs = {
        "psfm": tiny_command(setup, str(root / "psfm"), export=setup["export"]),
        "none": tiny_command(setup, str(root / "none")),
    }
    return {name: (run_adapt(command), command.out)[1] for name, command in runs.items()}


def test_one_arm_trains_answers_and_scores_every_held_out_question(setup, arms):
    out = Path(arms["psfm"])
    record = json.loads((out / "adapt.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == record["val_questions"] == metrics["questions"]
    assert metrics["single/questions"] + metrics["multi/questions"] == metrics["questions"]
    assert 0 <= metrics["overall"] <= 1 and metrics["problems/missing"] == 0
    counts = record["trainable_parameters"]
    assert counts["adapter"] > 0 and counts["connector"] > 0 and counts["language_model"] == 0
    from safetensors.torch import load_file

    saved = load_file(str(out / "trainable.safetensors"))
    assert sum(tensor.numel() for tensor in saved.values()) == sum(counts.values())
    assert all(name.startswith(("adapter.", "vlm.projector.")) for name in saved)
    assert (
        record["timings"]["train_s"] > 0
        and "psfm adapt: spatial adapter + trained encoder" in (out / "report.md").read_text()
    )
    none = json.loads((Path(arms["none"]) / "adapt.json").read_text())["trainable_parameters"]
    assert none["adapter"] == 0 and none["connector"] == counts["connector"]


def test_psfm_eval_rescores_an_arm_from_its_predictions_alone(arms):
    from psfm.commands.eval import EvalCommand
    from psfm.commands.eval import run as run_eval

    metrics = json.loads((Path(arms["psfm"]) / "metrics.json").read_text())
    again = run_eval(EvalCommand(predictions=str(Path(arms["psfm"]) / "predictions.jsonl"), bootstrap=20))
    assert again["questions"] == metrics["questions"] and again["overall"] == metrics["overall"]
    assert again["overall_ci_low"] == metrics["overall_ci_low"]


def test_a_checkpoint_answers_as_the_run_that_trained_it(setup, arms, tmp_path):
    again = tiny_command(setup, str(tmp_path / "again"), export=setup["export"], steps=0, checkpoint=arms["psfm"])
    run_adapt(again)
    read = lambda folder: (Path(folder) / "predictions.jsonl").read_text()  # noqa: E731
    assert read(again.out) == read(arms["psfm"])
    from safetensors.torch import load_file

    weights = lambda folder: load_file(str(Path(folder) / "trainable.safetensors"))  # noqa: E731
    trained, loaded = weights(arms["psfm"]), weights(again.out)  # steps=0 saves what it loaded
    assert trained.keys() == loaded.keys() and all(torch.equal(trained[k], loaded[k]) for k in trained)
    fresh = tiny_command(setup, str(tmp_path / "fresh"), export=setup["export"], steps=0)
    run_adapt(fresh)
    assert not all(torch.equal(trained[k], weights(fresh.out)[k]) for k in trained)  # training moved them
    assert json.loads((Path(again.out) / "adapt.json").read_text())["train_questions"] == 0
    assert "no training" in (Path(again.out) / "report.md").read_text()


def test_a_checkpoint_of_another_arm_or_export_is_refused_by_name(setup, arms, tmp_path):
    with pytest.raises(UsageError, match=r"tensors this model lacks, e.g. adapter\..*another arm"):
        run_adapt(tiny_command(setup, str(tmp_path / "a"), steps=0, checkpoint=arms["psfm"]))
    backbone = BackboneConfig(name="vit_test", img_size=32, overrides={"depth": 1, "embed_dim": 32})
    narrow = EncoderConfig(dim=16, depth=1, num_heads=2, num_latents=4, num_registers=1)
    export_encoder(build_encoder(backbone, narrow), backbone, narrow, (32, 32), tmp_path / "narrow")
    wrong_dim = r"adapter.projector.layers.0.weight is \(32, 32\) there but \(32, 16\) here \(.*another export's latent"
    with pytest.raises(UsageError, match=wrong_dim):
        run_adapt(
            tiny_command(setup, str(tmp_path / "b"), export=str(tmp_path / "narrow"), steps=0, checkpoint=arms["psfm"])
        )
    with pytest.raises(MissingPathError, match="checkpoint=/nowhere: no trainable.safetensors"):
        run_adapt(tiny_command(setup, str(tmp_path / "c"), steps=0, checkpoint="/nowhere"))


def test_arms_compared_side_by_side_with_a_chart_and_the_goal(setup, arms, tmp_path):
    path = compare_arms([arms["psfm"], arms["none"]], ["psfm", "none"], tmp_path)
    text = path.read_text()
    assert "| psfm |" in text and "| none |" in text and "name the arms psfm, none, random_init" in text
    assert (tmp_path / "adapt_arms.png").read_bytes().startswith(PNG_MAGIC)
    assert "not trained alike" not in text
    shorter = tiny_command(setup, str(tmp_path / "short"), steps=2)
    run_adapt(shorter)
    text = compare_arms([arms["psfm"], shorter.out], None, tmp_path / "c").read_text()
    assert "not trained alike:** steps: psfm=3, short=2" in text


def test_the_goal_line_reads_the_multi_view_gaps(tmp_path):
    def arm(name: str, multi: float) -> str:
        folder = tmp_path / name
        folder.mkdir()
        metrics = {"overall": 0.5, "overall_ci_low": 0.4, "overall_ci_high": 0.6, "questions": 10.0}
        metrics |= {"multi/overall": multi, "multi/overall_ci_low": multi, "multi/overall_ci_high": multi}
        metrics["multi/questions"] = 5.0
        (folder / "metrics.json").write_text(json.dumps(metrics))
        command = {"export": None, "encoder": "trained", "steps": 1}
        timings = {"train_s": 1.0, "train_s_per_sample": 0.5}
        (folder / "adapt.json").write_text(json.dumps({"command": command, "timings": timings}))
        return str(folder)

    runs = [arm("psfm", 0.40), arm("none", 0.34), arm("random_init", 0.36)]
    text = compare_arms(runs, None, tmp_path / "out").read_text()
    assert "not met: +6.0 points over none, +4.0 points over random_init" in text
    runs[2] = arm("random_init2", 0.30)
    text = compare_arms(runs, ["psfm", "none", "random_init"], tmp_path / "out2").read_text()
    assert "met: +6.0 points over none, +10.0 points over random_init" in text


def test_scores_split_by_the_views_a_question_needs(setup):
    items = load_qa_items(qa_shards(setup["val"]), lambda im: im.mean(dim=(2, 3))[:, None], (32, 32), progress=False)
    truth = {item.question.id: item.question.answer for item in items.items if item.question.views_needed == "multi"}
    metrics = score_arm(items, truth, bootstrap=0, seed=0)
    assert metrics["multi/overall"] == 1.0 and metrics["single/overall"] == 0.0
    assert metrics["problems/missing"] == sum(item.question.views_needed == "single" for item in items.items)


def test_bad_settings_are_refused_by_name(setup, tmp_path):
    with pytest.raises(UsageError, match="encoder='twin'"):
        tiny_command(setup, str(tmp_path), encoder="twin")
    with pytest.raises(MissingPathError, match="llm=/nowhere: not a local model folder"):
        run_adapt(tiny_command(setup, str(tmp_path / "x"), llm="/nowhere"))
    with pytest.raises(ValueError, match="no question with views"):
        load_qa_items(str(Path(setup["root"]) / "world" / "val"), lambda im: im, (32, 32), progress=False)
