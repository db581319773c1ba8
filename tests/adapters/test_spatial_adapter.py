"""SpatialAdapter: identity at step 0, learns from there, any batch layout, frozen encoder stays frozen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from psfm.adapters import SpatialAdapter
from psfm.encoders.build import build_encoder
from psfm.encoders.config import BackboneConfig, EncoderConfig
from psfm.export import FrozenSpatialEncoder

LATENT_DIM, HIDDEN_DIM = 8, 16
VISUAL_COUNTS = (5, 9, 2)  # visual tokens per sample (frames x tokens per frame differ)
LATENT_COUNTS = (4, 12, 7)  # latents per sample; the second concatenates two scenes of 6


def pad(sequences: list[torch.Tensor], fill: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    """[N_i, C] per sample -> padded [B, max N, C] (padding = ``fill``, garbage on purpose) and mask [B, max N]."""
    longest = max(len(sequence) for sequence in sequences)
    padded = torch.full((len(sequences), longest, sequences[0].shape[-1]), fill)
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for index, sequence in enumerate(sequences):
        padded[index, : len(sequence)], mask[index, : len(sequence)] = sequence, True
    return padded, mask


def samples(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    visual = [torch.randn(count, HIDDEN_DIM, generator=generator) * 3 for count in VISUAL_COUNTS]
    latents = [torch.randn(count, LATENT_DIM, generator=generator) for count in LATENT_COUNTS]
    return visual, latents


def adapter(trained: bool = False) -> SpatialAdapter:
    """A tiny adapter; ``trained`` gives the zero-initialised layer weights, as after some training."""
    torch.manual_seed(0)
    module = SpatialAdapter(LATENT_DIM, HIDDEN_DIM, num_heads=2, bottleneck_dim=4)
    if trained:
        nn.init.normal_(module.bottleneck[-1].weight, std=0.5)
        nn.init.normal_(module.bottleneck[-1].bias, std=0.5)
    return module


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_at_init_the_visual_tokens_come_back_exactly(dtype):
    visual, latents = samples()
    visual_tokens, visual_mask = pad(visual)
    latent_tokens, latent_mask = pad(latents)
    out = adapter()(visual_tokens.to(dtype), latent_tokens, visual_mask, latent_mask)
    assert out.dtype == dtype
    assert torch.equal(out, visual_tokens.to(dtype))


def test_one_step_leaves_identity_and_then_every_parameter_gets_a_gradient():
    visual, latents = samples()
    visual_tokens, visual_mask = pad(visual)
    latent_tokens, latent_mask = pad(latents)
    target = torch.randn_like(visual_tokens)
    module = adapter()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        out = module(visual_tokens, latent_tokens, visual_mask, latent_mask)
        return ((out - target)[visual_mask] ** 2).mean()

    loss().backward()
    optimizer.step()
    optimizer.zero_grad()
    out = module(visual_tokens, latent_tokens, visual_mask, latent_mask)
    assert not torch.equal(out[visual_mask], visual_tokens[visual_mask])
    loss().backward()
    starved = [name for name, param in module.named_parameters() if param.grad is None or not param.grad.any()]
    assert starved == []
    assert all(torch.isfinite(param.grad).all() for param in module.parameters())


def test_a_padded_batch_gives_what_each_sample_gives_alone():
    visual, latents = samples()
    module = adapter(trained=True)
    visual_tokens, visual_mask = pad(visual)
    latent_tokens, latent_mask = pad(latents)
    batched = module(visual_tokens, latent_tokens, visual_mask, latent_mask)
    for index, (sample_visual, sample_latents) in enumerate(zip(visual, latents, strict=True)):
        alone = module(sample_visual[None], sample_latents[None])[0]
        assert not torch.allclose(alone, sample_visual)  # the adapter does change real tokens
        torch.testing.assert_close(batched[index, : len(sample_visual)], alone)


@pytest.mark.parametrize("fill", [1e4, float("nan")])
def test_padded_visual_positions_come_back_unchanged_and_padding_never_leaks(fill):
    visual, latents = samples()
    module = adapter(trained=True)
    visual_tokens, visual_mask = pad(visual, fill)
    latent_tokens, latent_mask = pad(latents, fill)
    out = module(visual_tokens, latent_tokens, visual_mask, latent_mask)
    assert torch.equal(out[~visual_mask].nan_to_num(), visual_tokens[~visual_mask].nan_to_num())
    assert torch.isnan(out[~visual_mask]).sum() == torch.isnan(visual_tokens[~visual_mask]).sum()
    (clean_visual, _), (clean_latents, _) = pad(visual, 0.0), pad(latents, 0.0)  # the same real tokens
    reference = module(clean_visual, clean_latents, visual_mask, latent_mask)
    torch.testing.assert_close(out[visual_mask], reference[visual_mask])
    out[visual_mask].square().mean().backward()
    assert all(torch.isfinite(param.grad).all() for param in module.parameters())


def softmax_attention(q, k, v, attn_mask=None):
    """Attention as the formula reads: a row with no key to attend to is 0/0 = NaN (as in some GPU kernels)."""
    scores = (q @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5
    return scores.masked_fill(~attn_mask, float("-inf")).softmax(dim=-1) @ v


@pytest.mark.parametrize("attention", ["torch", "softmax"])
def test_a_sample_without_latents_keeps_its_visual_tokens(attention, monkeypatch):
    if attention == "softmax":  # torch's CPU kernels return 0 for such rows; the adapter must not rely on it
        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", softmax_attention)
    visual, latents = samples()
    module = adapter(trained=True)
    visual_tokens, visual_mask = pad(visual)
    latent_tokens, latent_mask = pad(latents)
    latent_mask[1] = False
    out = module(visual_tokens, latent_tokens, visual_mask, latent_mask)
    assert torch.equal(out[1], visual_tokens[1])
    assert not torch.equal(out[0, : VISUAL_COUNTS[0]], visual_tokens[0, : VISUAL_COUNTS[0]])
    out[visual_mask].square().mean().backward()
    assert all(torch.isfinite(param.grad).all() for param in module.parameters())


def test_a_frozen_encoder_upstream_gets_no_gradient():
    torch.manual_seed(0)
    backbone = BackboneConfig(name="vit_test", img_size=32, overrides={"depth": 1, "embed_dim": 32})
    config = EncoderConfig(dim=LATENT_DIM, depth=1, num_heads=2, num_latents=6, num_registers=1)
    encoder = FrozenSpatialEncoder(build_encoder(backbone, config), (32, 32))
    scenes = encoder(torch.rand(3, 2, 3, 32, 32))  # 3 scenes of 2 views -> [3, 6, D]
    latent_tokens, latent_mask = pad([torch.cat([scenes[0], scenes[1]]), scenes[2]])  # sample 0 sees two scenes
    visual_tokens, visual_mask = pad([torch.randn(count, HIDDEN_DIM) for count in VISUAL_COUNTS[:2]])
    module = adapter(trained=True)
    module(visual_tokens, latent_tokens, visual_mask, latent_mask)[visual_mask].square().mean().backward()
    assert all(param.grad is None and not param.requires_grad for param in encoder.parameters())
    assert module.projector.layers[0].weight.grad.any()


def test_mismatched_inputs_are_refused_with_what_to_do():
    module = adapter()
    with pytest.raises(ValueError, match=r"latents have dim 5 .* latent_dim = the encoder's dim"):
        module(torch.randn(1, 3, HIDDEN_DIM), torch.randn(1, 4, 5))
    with pytest.raises(ValueError, match="visual_mask must be bool"):
        module(torch.randn(1, 3, HIDDEN_DIM), torch.randn(1, 4, LATENT_DIM), torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"latent_mask has shape \(1, 3\), expected \(1, 4\)"):
        module(torch.randn(1, 3, HIDDEN_DIM), torch.randn(1, 4, LATENT_DIM), None, torch.ones(1, 3, dtype=torch.bool))


def test_the_spa3_vlm_shape_has_the_reference_parameter_count():
    """768-d latents into Qwen2.5-VL-3B (hidden 2048, 16 heads), bottleneck 512: ≈29M (shared/REFERENCE.md §1)."""
    count = sum(param.numel() for param in SpatialAdapter(768, 2048, num_heads=16).parameters())
    assert 28.5e6 < count < 29.5e6


def test_the_adapters_import_with_torch_alone():
    code = "import sys, psfm.adapters; print(sorted(m for m in {} if m in sys.modules))".format(
        ("timm", "safetensors", "lightning", "wandb", "webdataset", "hydra", "omegaconf", "kornia", "transformers")
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
