"""PrependAdapter (the ablation): one token per real latent, padding zero and masked, per-sample independent."""

from __future__ import annotations

import torch

from psfm.adapters import PrependAdapter
from tests.adapters.test_spatial_adapter import HIDDEN_DIM, LATENT_DIM, pad, samples


def test_each_real_latent_becomes_one_token_and_padding_is_zero_and_masked():
    _, latents = samples()
    torch.manual_seed(0)
    module = PrependAdapter(LATENT_DIM, HIDDEN_DIM)
    latent_tokens, latent_mask = pad(latents, float("nan"))
    out = module(latent_tokens, latent_mask)
    assert out.tokens.shape == (len(latents), max(map(len, latents)), HIDDEN_DIM)
    assert torch.equal(out.mask, latent_mask)
    assert torch.equal(out.tokens[~latent_mask], torch.zeros_like(out.tokens[~latent_mask]))
    for index, sample in enumerate(latents):
        torch.testing.assert_close(out.tokens[index, : len(sample)], module(sample[None]).tokens[0])
    out.tokens[latent_mask].square().mean().backward()
    assert all(param.grad is not None and param.grad.any() for param in module.parameters())
