"""Probe heads on frozen features, and the one loop that fits them.

* ``Ridge``: closed-form ridge on standardized features, its strength chosen by k-fold
  cross-validation on the train scenes alone (the pooled-linear probe, and the per-patch depth probe).
* ``AttentiveProbe``: a few learned queries cross-attend to a token set (after one self-attention
  layer over it). A latent *set* keeps facts in which tokens hold what, which mean pooling blurs.
* ``RayDepthProbe``: one query per patch ray of a camera the encoder never saw, cross-attending
  to the scene tokens: depth of an unseen view from the scene representation alone.

``fit_probe`` trains the learned heads with AdamW and keeps the weights that did best on a held-out
part of the *train* scenes: nothing is ever chosen on the scenes a probe is scored on.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


class Ridge:
    """Ridge regression ``y ≈ standardize(x) @ W + b``; ``alpha`` is per standardized sample (scale-free)."""

    def __init__(self, alphas: Sequence[float] = RIDGE_ALPHAS, folds: int = 5, seed: int = 0):
        self.alphas, self.folds, self.seed = tuple(alphas), folds, seed

    @staticmethod
    def _solve(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
        gram = x.T @ x + alpha * len(x) * torch.eye(x.shape[1], dtype=x.dtype)
        return torch.linalg.solve(gram, x.T @ y)

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> Ridge:
        """x [n, F], y [n, K]; rows with a NaN target are left out."""
        x, y = x.double(), y.double()
        keep = ~torch.isnan(y).any(1)
        x, y = x[keep], y[keep]
        self.x_mean, self.x_std = x.mean(0), x.std(0).clamp_min(1e-6)
        self.y_mean = y.mean(0)
        xs, ys = (x - self.x_mean) / self.x_std, y - self.y_mean
        order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(self.seed))
        errors = []
        for alpha in self.alphas:
            error = 0.0
            for fold in order.chunk(self.folds):
                train = torch.ones(len(xs), dtype=torch.bool)
                train[fold] = False
                weights = self._solve(xs[train], ys[train], alpha)
                error += (xs[fold] @ weights - ys[fold]).square().sum().item()
            errors.append(error)
        self.alpha = self.alphas[min(range(len(errors)), key=errors.__getitem__)]
        self.weights = self._solve(xs, ys, self.alpha)
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (((x.double() - self.x_mean) / self.x_std) @ self.weights + self.y_mean).float()


class TokenInput(nn.Module):
    """Tokens [B, L, Din] -> [B, L, D]: per-token LayerNorm (sources differ in scale), projection,
    optional learned embedding per token id (which view, which patch), optional mark on token 0."""

    def __init__(self, in_dim: int, dim: int, num_token_ids: int = 0, mark_first: bool = False):
        super().__init__()
        self.norm, self.proj = nn.LayerNorm(in_dim), nn.Linear(in_dim, dim)
        self.token_ids = nn.Embedding(num_token_ids, dim) if num_token_ids else None
        self.first = nn.Parameter(torch.zeros(dim)) if mark_first else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.norm(tokens))
        if self.token_ids is not None:
            x = x + self.token_ids.weight[: x.shape[1]]
        if self.first is not None:
            x = torch.cat([x[:, :1] + self.first, x[:, 1:]], dim=1)
        return x


class AttentiveProbe(nn.Module):
    """tokens [B, L, Din] -> [B, out_dim] through self-attention, then ``num_queries`` cross-attending queries.

    With ``condition_dim`` the queries also carry a question (``condition`` [B, Dc], e.g. which
    objects to measure), so one probe reads different facts of the same token set on demand.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int = 64,
        num_queries: int = 4,
        num_heads: int = 4,
        num_token_ids: int = 0,
        mark_first: bool = False,
        condition_dim: int = 0,
    ):
        super().__init__()
        self.input = TokenInput(in_dim, dim, num_token_ids, mark_first)
        self.condition = (
            nn.Sequential(nn.Linear(condition_dim, dim), nn.GELU(), nn.Linear(dim, dim)) if condition_dim else None
        )
        self.mix = nn.TransformerEncoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.attend = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(num_queries * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, out_dim))

    def forward(self, tokens: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(self.mix(self.input(tokens)))
        queries = self.queries.expand(len(x), -1, -1)
        if self.condition is not None:
            queries = queries + self.condition(condition)[:, None]
        pooled, _ = self.attend(queries, x, x, need_weights=False)
        return self.head(pooled.flatten(1))


class RayDepthProbe(nn.Module):
    """Scene tokens [B, L, Din] + rays [B, N, 9] of a camera -> log depth [B, N].

    A ray is its camera-frame direction (3) and its Plücker coordinates in the reference frame (6),
    so the probe knows where the camera sits in the frame the latents describe.
    """

    def __init__(self, in_dim: int, dim: int = 64, depth: int = 2, num_heads: int = 4, mark_first: bool = False):
        super().__init__()
        self.scene = TokenInput(in_dim, dim, mark_first=mark_first)
        self.rays = nn.Sequential(nn.Linear(9, dim), nn.GELU(), nn.Linear(dim, dim))
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(dim, num_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def forward(self, tokens: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
        memory, x = self.scene(tokens), self.rays(rays)
        for layer in self.layers:
            x = layer(x, memory)
        return self.out(x).squeeze(-1)


PATIENCE = 1000  # steps without a better holdout loss before a fit stops (fit_probe)


def fit_probe(
    model: nn.Module,
    data: Sequence[torch.Tensor],
    loss_fn: Callable[..., torch.Tensor],
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    holdout: float = 0.15,
    eval_every: int = 100,
    max_holdout: int = 512,
    patience: int | None = PATIENCE,
) -> nn.Module:
    """Train ``model`` on items ``data`` (tensors sharing dim 0) with ``loss_fn(model, *batch)``.

    A seeded ``holdout`` share of the items (at most ``max_holdout``) is kept aside; the weights with
    the lowest holdout loss (checked every ``eval_every`` steps) are returned, in eval mode, with the
    checks as ``model.holdout_curve`` [(step, loss), ...] (see ``second_half_gain``). The fit stops early
    once the holdout loss has not improved for ``patience`` steps (None: never): a probe that
    overfits its scenes (the attentive fact probe, best near step 400) then costs little when the
    budget is raised for a slower one. It returns the best weights seen, as without stopping, unless
    the loss would have recovered after ``patience`` flat steps; the cosine schedule still spans
    ``steps``, so the steps it does take are the same. Runs on one CPU thread:
    probe ops are too small to gain from more, and spinning OpenMP threads on a busy machine made
    steps up to 30x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(
            model, data, loss_fn, steps, batch_size, lr, weight_decay, seed, holdout, eval_every, max_holdout, patience
        )
    finally:
        torch.set_num_threads(threads)


def _fit(model, data, loss_fn, steps, batch_size, lr, weight_decay, seed, holdout, eval_every, max_holdout, patience):
    generator = torch.Generator().manual_seed(seed)
    count = len(data[0])
    order = torch.randperm(count, generator=generator)
    held = order[: min(max_holdout, max(1, int(holdout * count)))] if count > 4 else order
    train = order[len(held) :] if count > 4 else order
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    best, best_step, best_state, curve = math.inf, 0, copy.deepcopy(model.state_dict()), []
    for step in range(steps):
        model.train()
        index = train[torch.randint(len(train), (min(batch_size, len(train)),), generator=generator)]
        loss = loss_fn(model, *(tensor[index] for tensor in data))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            model.eval()
            with torch.no_grad():
                held_loss = sum(
                    loss_fn(model, *(tensor[part] for tensor in data)).item() * len(part) for part in held.split(256)
                ) / len(held)
            curve.append((step + 1, held_loss))
            if held_loss < best:
                best, best_step, best_state = held_loss, step + 1, copy.deepcopy(model.state_dict())
            elif patience is not None and step + 1 - best_step >= patience:
                break
    model.load_state_dict(best_state)
    model.holdout_curve = curve
    return model.eval()


def second_half_gain(curve: Sequence[tuple[int, float]]) -> float:
    """What the second half of a fit bought: 1 - (best holdout loss overall) / (best in the first half).

    Near 0: the probe had converged by half its steps, so its score is what the features allow.
    Large: it was still learning, and more ``steps`` would read more from these features. A probe
    that reads one source's features faster than another's makes a short fit unfair to the slower.
    NaN when the curve is too short or its losses are not positive.
    """
    if len(curve) < 2:
        return math.nan
    half = curve[-1][0] / 2
    early = [loss for step, loss in curve if step <= half]
    if not early or min(early) <= 0:
        return math.nan
    return 1 - min(loss for _, loss in curve) / min(early)
