"""AdaptedVLM on tiny random configs of every supported VLM class: exact identity at step 0, the adapter
reaches the visual tokens and nothing else, a batch of different frame counts gives what each sample
gives alone, generation with a KV cache matches generation without, and gradients reach only what trains.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from psfm.adapters import PrependAdapter, SpatialAdapter
from psfm.adapters.vlm import VLM_LAYOUTS, AdaptedVLM, gather_positions, scatter_positions, submodule
from tests.adapters import tiny_vlms
from tests.adapters.tiny_vlms import HIDDEN, IMAGE_ID, IMAGES_PER_SAMPLE, SCENE_ID, TOKENS_PER_IMAGE

LATENT_DIM = 8
LATENT_COUNTS = (5, 12, 3)  # latents per sample (the second: two scenes of 6 concatenated)
pytest.importorskip("transformers")


def scene_latents(counts: tuple[int, ...] = LATENT_COUNTS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    latents = torch.full((len(counts), max(counts), LATENT_DIM), 1e4)  # padding holds garbage on purpose
    mask = torch.zeros(len(counts), max(counts), dtype=torch.bool)
    for row, count in enumerate(counts):
        latents[row, :count], mask[row, :count] = torch.randn(count, LATENT_DIM, generator=generator), True
    return latents, mask


def spatial_adapter(trained: bool) -> SpatialAdapter:
    torch.manual_seed(0)
    adapter = SpatialAdapter(LATENT_DIM, HIDDEN, num_heads=4, bottleneck_dim=16)
    if trained:  # as after some training: the zero-initialised layer is no longer zero
        nn.init.normal_(adapter.bottleneck[-1].weight, std=1.0)
        nn.init.normal_(adapter.bottleneck[-1].bias, std=1.0)
    return adapter


def first_visual(inputs: dict[str, torch.Tensor]) -> int:
    return int((inputs["input_ids"][0] == IMAGE_ID).nonzero()[0])


@pytest.fixture(params=sorted(tiny_vlms.BUILDERS))
def tiny(request) -> tiny_vlms.TinyVLM:
    return tiny_vlms.BUILDERS[request.param]()


def test_every_supported_class_has_a_tiny_model_here():
    assert sorted(tiny_vlms.BUILDERS) == sorted(VLM_LAYOUTS)


def test_at_init_the_vlm_gives_exactly_what_it_gives_alone(tiny):
    bare = tiny.model(**tiny.batch).logits
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=False))
    latents, mask = scene_latents()
    assert torch.equal(adapted(latents=latents, latent_mask=mask, **tiny.batch).logits, bare)


@pytest.mark.parametrize("inject", ["input", 1])
def test_the_adapter_changes_the_visual_tokens_and_what_follows_them_only(tiny, inject):
    """Causal models: logits before a sample's first image stay; from its first image on they change."""
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=True), inject=inject)
    latents, mask = scene_latents()
    for row, alone in enumerate(tiny.alone):
        bare = tiny.model(**alone).logits[0]
        out = adapted(latents=latents[row : row + 1], latent_mask=mask[row : row + 1], **alone).logits[0]
        start = first_visual(alone)
        assert torch.equal(out[:start], bare[:start])
        assert not torch.allclose(out[start:], bare[start:])
        assert (out[-1] - bare[-1]).abs().max() > 1e-3  # the answer position reads the scene
    assert torch.equal(tiny.model(**tiny.alone[0]).logits, adapted(**tiny.alone[0]).logits)  # no latents, no change


def test_a_batch_with_different_frame_counts_gives_what_each_sample_gives_alone(tiny):
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=True))
    latents, mask = scene_latents()
    batched = adapted(latents=latents, latent_mask=mask, **tiny.batch).logits
    visual = (tiny.batch["input_ids"] == IMAGE_ID).sum(dim=1)
    assert visual.tolist() == [count * TOKENS_PER_IMAGE for count in IMAGES_PER_SAMPLE]
    for row, alone in enumerate(tiny.alone):
        length = alone["input_ids"].shape[1]
        own = adapted(latents=latents[row : row + 1, : mask[row].sum()], **alone).logits[0]
        torch.testing.assert_close(batched[row, -length:], own, atol=2e-5, rtol=1e-4)


def test_the_latents_matter_per_sample(tiny):
    """Another scene's latents give other logits: the adapter does not average the batch's scenes."""
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=True))
    latents, mask = scene_latents()
    base = adapted(latents=latents, latent_mask=mask, **tiny.batch).logits
    swapped = latents.clone()
    swapped[2, :3] = torch.randn(3, LATENT_DIM)
    changed = adapted(latents=swapped, latent_mask=mask, **tiny.batch).logits
    assert torch.equal(changed[:2], base[:2])
    assert not torch.allclose(changed[2, -1], base[2, -1])


@pytest.mark.parametrize("name", ["Qwen2_5_VLForConditionalGeneration", "MiniVLM"])
def test_generation_with_a_kv_cache_equals_generation_without(name):
    """Decoding steps hold no placeholder: the adapter acts once, in the prompt, and the cache keeps it."""
    tiny = tiny_vlms.BUILDERS[name]()
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=True))
    latents, mask = scene_latents()
    alone = {key: value for key, value in tiny.alone[1].items() if key != "labels"}
    scene = dict(latents=latents[1:2], latent_mask=mask[1:2])
    if name == "MiniVLM":
        tokens = adapted.generate(**scene, **alone, max_new_tokens=5)[0, alone["input_ids"].shape[1] :]
    else:
        tokens = adapted.generate(**scene, **alone, max_new_tokens=5, do_sample=False)[0, -5:]
    ids = alone["input_ids"]
    for token in tokens:  # the same greedy choice from a full forward pass over prompt + tokens so far
        step = {**alone, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
        logits = adapted(**scene, **step).logits[0, -1]
        assert int(logits.argmax()) == int(token)
        ids = torch.cat([ids, token.view(1, 1)], dim=1)
    bare = tiny.model.generate(**alone, max_new_tokens=5, **({} if name == "MiniVLM" else {"do_sample": False}))
    assert not torch.equal(bare[0, -5:], tokens)  # and the scene did change what was said


def _grads(module: nn.Module) -> dict[str, bool]:
    return {name: param.grad is not None and bool(param.grad.any()) for name, param in module.named_parameters()}


@pytest.mark.parametrize("llm", ["frozen", "lora", "full"])
@pytest.mark.parametrize("name", ["Qwen2_5_VLForConditionalGeneration", "LlavaForConditionalGeneration", "MiniVLM"])
def test_gradients_reach_only_the_trainable_parts(name, llm):
    pytest.importorskip("peft")
    tiny = tiny_vlms.BUILDERS[name]()
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=False), llm=llm).train()
    latents, mask = scene_latents()
    adapted(latents=latents, latent_mask=mask, **tiny.batch).loss.backward()
    layout = adapted.layout
    language_model = submodule(tiny.model, layout.language_model)
    for path in layout.vision:
        vision = submodule(tiny.model, path)
        assert not vision.training, f"{path} left eval mode"
        assert all(not param.requires_grad and param.grad is None for param in vision.parameters())
    grads = _grads(language_model)
    if llm == "frozen":
        assert not any(param.requires_grad for param in language_model.parameters())
    elif llm == "lora":
        assert grads and all(flag == ("lora_B" in name) for name, flag in grads.items() if "lora_A" not in name)
        assert all(not param.requires_grad for name, param in language_model.named_parameters() if "lora_" not in name)
    else:
        assert sum(grads.values()) > 0.8 * len(grads)
    for path in layout.connector:  # trained with the full model (and MiniVLM's own projector), frozen otherwise
        connector = submodule(tiny.model, path)
        assert all(param.requires_grad == (llm == "full") for param in connector.parameters())
    adapter_grads = _grads(adapted.adapter)  # at zero init only the zero-initialised layer gets a gradient
    assert adapter_grads["bottleneck.2.weight"] and adapter_grads["bottleneck.2.bias"]
    counts = adapted.trainable_parameters()
    assert counts["adapter"] == sum(param.numel() for param in adapted.adapter.parameters())
    assert (counts["language_model"] > 0) == (llm != "frozen")
    if llm != "full":
        assert counts["other"] == 0


def test_mini_vlm_trains_its_projector_when_told():
    tiny = tiny_vlms.mini_vlm()
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=False), train_connector=True).train()
    latents, mask = scene_latents()
    adapted(latents=latents, latent_mask=mask, **tiny.batch).loss.backward()
    assert all(_grads(tiny.model.projector).values())
    assert adapted.trainable_parameters()["connector"] == sum(p.numel() for p in tiny.model.projector.parameters())


def test_one_step_of_training_moves_the_answer():
    tiny = tiny_vlms.mini_vlm()
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=False)).train()
    latents, mask = scene_latents()
    before = adapted(latents=latents, latent_mask=mask, **tiny.batch)
    before.loss.backward()
    torch.optim.SGD([p for p in adapted.parameters() if p.requires_grad], lr=0.5).step()
    after = adapted(latents=latents, latent_mask=mask, **tiny.batch)
    assert after.loss < before.loss


def test_prepend_adapter_fills_the_scene_placeholders():
    """One scene placeholder per latent, right after the padding; a batch gives what each sample gives alone."""
    tiny = tiny_vlms.mini_vlm()
    torch.manual_seed(0)
    adapted = AdaptedVLM(tiny.model, PrependAdapter(LATENT_DIM, HIDDEN), scene_token_id=SCENE_ID)
    latents, mask = scene_latents()
    rows = [
        [SCENE_ID] * count + alone["input_ids"][0].tolist()
        for count, alone in zip(LATENT_COUNTS, tiny.alone, strict=True)
    ]
    ids, attention = tiny_vlms.left_pad(rows)
    batch = dict(input_ids=ids, attention_mask=attention, image_features=tiny.batch["image_features"])
    out = adapted(latents=latents, latent_mask=mask, **batch).logits
    bare = tiny.model(**batch).logits
    for row, (count, alone) in enumerate(zip(LATENT_COUNTS, tiny.alone, strict=True)):
        own_ids = torch.tensor([rows[row]])
        own = adapted(latents=latents[row : row + 1, :count], input_ids=own_ids, image_features=alone["image_features"])
        torch.testing.assert_close(out[row, -len(rows[row]) :], own.logits[0], atol=2e-5, rtol=1e-4)
        assert not torch.allclose(out[row, -1], bare[row, -1])  # the scene tokens are read
    mask[0, 4] = False
    with pytest.raises(ValueError, match=r"scene placeholders per sample \[5, 12, 3\] != real latents .* \[4, 12, 3\]"):
        adapted(latents=latents, latent_mask=mask, **batch)


def test_gather_and_scatter_round_trip_any_layout():
    hidden = torch.randn(3, 7, 2)
    positions = torch.tensor([[0, 1, 0, 1, 0, 0, 1], [0] * 7, [1] * 7], dtype=torch.bool)
    tokens, mask, index = gather_positions(hidden, positions)
    assert mask.sum(dim=1).tolist() == [3, 0, 7]
    assert torch.equal(tokens[0, :3], hidden[0, [1, 3, 6]])
    assert torch.equal(scatter_positions(hidden, tokens, index), hidden)
    changed = scatter_positions(hidden, tokens + mask[..., None], index)
    assert torch.equal(changed[positions], hidden[positions] + 1)
    assert torch.equal(changed[~positions], hidden[~positions])


def test_bad_inputs_are_refused_with_what_to_do():
    tiny = tiny_vlms.mini_vlm()
    with pytest.raises(
        ValueError, match=r"no adapter layout for VLM class Linear; supported: .*MiniVLM.*register_vlm_layout"
    ):
        AdaptedVLM(nn.Linear(2, 2), spatial_adapter(trained=False))
    with pytest.raises(ValueError, match="hidden_dim is 32 but MiniVLM's language model is 64 wide"):
        AdaptedVLM(tiny.model, SpatialAdapter(LATENT_DIM, 32, num_heads=4))
    with pytest.raises(ValueError, match=r"inject=9: expected 'input' or a layer index in \[0, 2\)"):
        AdaptedVLM(tiny.model, spatial_adapter(trained=False), inject=9)
    with pytest.raises(ValueError, match="needs scene_token_id"):
        AdaptedVLM(tiny.model, PrependAdapter(LATENT_DIM, HIDDEN))
    with pytest.raises(ValueError, match="llm='some'"):
        AdaptedVLM(tiny.model, spatial_adapter(trained=False), llm="some")
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=False))
    with pytest.raises(ValueError, match=r"latents have dim 5 .* latent_dim = the encoder's dim"):
        adapted(latents=torch.randn(3, 4, 5), **tiny.batch)


def test_given_embeddings_instead_of_ids_the_same_positions_are_found():
    """Hugging Face VLMs accept inputs_embeds; the placeholders are then found by their embedding."""
    tiny = tiny_vlms.llava()
    adapted = AdaptedVLM(tiny.model, spatial_adapter(trained=True))
    latents, mask = scene_latents()
    by_ids = adapted(latents=latents, latent_mask=mask, **tiny.batch).logits
    inputs = {key: value for key, value in tiny.batch.items() if key != "input_ids"}
    embeds = tiny.model.get_input_embeddings()(tiny.batch["input_ids"])
    by_embeddings = adapted(latents=latents, latent_mask=mask, inputs_embeds=embeds, **inputs).logits
    torch.testing.assert_close(by_embeddings, by_ids)
    assert not torch.allclose(by_ids, tiny.model(**tiny.batch).logits)
