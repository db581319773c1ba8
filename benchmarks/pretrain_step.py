"""PSFM step time, and how it grows with the number of context views.

1. ``world_tiny`` as configured (B=4 scenes, V=6 views at 64x64): median time of one full training
   step (teachers, backbone, latent encoder, decoder, heads, backward, AdamW), and views/s.
2. Scaling: the same model on C = 4, 8, 16, 32 context views (L fixed), one target view, timing
   the encoder side (backbone + latent encoder, forward + backward) and the whole step; the
   exponent k of time ∝ C^k is the slope of a least-squares fit in log-log space. The latent
   encoder attends jointly over [registers; L queries; C·N patch tokens], so attention is
   quadratic in C·N: the exponent stays near 1 while per-token MLPs dominate (small N) and rises
   towards 2 as C·N grows. Both image sizes are reported for that reason.

    python benchmarks/pretrain_step.py [--repeats 5] [--sizes 64 128]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import psfm.commands.pretrain  # noqa: F401 - registers the schema
from psfm.geometry import intrinsics_from_fov, look_at
from psfm.training.model import PretrainModel
from psfm.training.optim import build_optimizer
from psfm.types import MultiViewBatch


def synthetic_batch(batch: int, context: int, target: int, size: int) -> MultiViewBatch:
    views = context + target
    eyes = [np.array([2 * math.cos(a), 2 * math.sin(a), 1.5]) for a in np.linspace(0, 2 * math.pi, views, False)]
    poses = torch.tensor(np.stack([look_at(eye, np.zeros(3)) for eye in eyes]), dtype=torch.float32)
    poses = (torch.linalg.inv(poses[:1]) @ poses).expand(batch, -1, -1, -1).clone()
    intrinsics = torch.tensor(intrinsics_from_fov(size, size, 60.0), dtype=torch.float32)
    return MultiViewBatch(
        images=torch.rand(batch, views, 3, size, size),
        intrinsics=intrinsics.expand(batch, views, 3, 3).clone(),
        cam_to_world=poses,
        context_index=torch.arange(context).expand(batch, -1).clone(),
        target_index=torch.arange(context, views).expand(batch, -1).clone(),
        pose_scale=torch.ones(batch),
        has_pose=torch.ones(batch, dtype=torch.bool),
        view_ids=torch.arange(views).expand(batch, -1).clone(),
        depth=1 + torch.rand(batch, views, 1, size, size),
        scene_keys=[f"s{i}" for i in range(batch)],
        pose_sources=["gt"] * batch,
    )


def world_tiny_model(size: int, loss_views: str = "all") -> PretrainModel:
    with initialize_config_module(config_module="psfm.configs", version_base="1.3"):
        cfg = compose(
            "pretrain", overrides=[f"model.backbone.img_size={size}", f"model.objective.loss_views={loss_views}"]
        )
    command = OmegaConf.to_object(cfg)
    return PretrainModel(command.model, total_steps=1000), command


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def full_step(model, optimizer, batch):
    def run():
        optimizer.zero_grad(set_to_none=True)
        model(batch)["loss"].backward()
        optimizer.step()

    return run


def encoder_step(model, batch):
    def run():
        model.zero_grad(set_to_none=True)
        images = batch.gather_views(batch.context_index, batch.images)
        model.encoder(images).latents.square().mean().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    model, command = world_tiny_model(64)
    optimizer, _ = build_optimizer(model.trainable_parameters(), command.optim, 1000)
    batch = synthetic_batch(command.datamodule.batch_size, 3, 3, 64)
    seconds = median_seconds(full_step(model, optimizer, batch), args.repeats)
    views = batch.batch_size * batch.num_views
    print(f"world_tiny step (B=4, V=6 at 64x64): {seconds * 1000:.0f} ms, {views / seconds:.0f} views/s")

    for size in args.sizes:
        model, command = world_tiny_model(size, loss_views="target")
        optimizer, _ = build_optimizer(model.trainable_parameters(), command.optim, 1000)
        contexts, encoder_times, step_times = [4, 8, 16, 32], [], []
        for context in contexts:
            batch = synthetic_batch(1, context, 1, size)
            encoder_times.append(median_seconds(encoder_step(model, batch), args.repeats))
            step_times.append(median_seconds(full_step(model, optimizer, batch), args.repeats))
        log_c = np.log(contexts)
        encoder_k = np.polyfit(log_c, np.log(encoder_times), 1)[0]
        step_k = np.polyfit(log_c, np.log(step_times), 1)[0]
        patches = (size // 16) ** 2
        print(f"\n{size}x{size} ({patches} patches/view), L={command.model.encoder.num_latents}, one target view:")
        print("  C    encoder fwd+bwd   full step")
        for c, e, s in zip(contexts, encoder_times, step_times, strict=True):
            print(f"  {c:<4} {e * 1000:10.1f} ms   {s * 1000:8.1f} ms")
        print(f"  exponent k (time ∝ C^k): encoder {encoder_k:.2f}, full step {step_k:.2f}")


if __name__ == "__main__":
    main()
