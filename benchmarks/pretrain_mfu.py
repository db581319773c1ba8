"""Throughput and model FLOPs utilization (MFU) of one PSFM training step, and attention-backend parity.

The model is an experiment's shape (default ``spa3r``: frozen ViT-L/14 at 518 px per view, latent
encoder and field decoder at width 768, depth 6, L = 256) with random weights, fed synthetic batches,
so no data or weights are needed. Teachers are replaced by ``pixels`` (the frozen teacher networks
are forward-only passengers whose cost depends on which ones a user brings). FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` over one real step (forward + backward of every
matmul, attention counted on its math path), so MFU = counted FLOPs / step time / peak FLOP/s. The peak is
``--peak-tflops`` or, for known GPUs, their dense bf16 tensor-core figure.

Also prints, on CUDA with xformers installed, the largest difference between xformers and SDPA
attention outputs on the same inputs (fp32 and bf16): the backends must agree to kernel rounding.

    python benchmarks/pretrain_mfu.py                                   # spa3r shape, bf16 on CUDA
    python benchmarks/pretrain_mfu.py --attention sdpa --compile
    python benchmarks/pretrain_mfu.py --experiment world_tiny --batch 4 --views 6 --size 64   # CPU smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict
from pretrain_step import synthetic_batch  # benchmarks/ is on sys.path when this file is run
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import psfm.commands.pretrain  # noqa: F401 - registers the schema
from psfm.layers.attention import _xformers_importable, attention
from psfm.training.model import PretrainModel
from psfm.training.module import TRANSFORMER_BLOCKS
from psfm.training.optim import build_optimizer

# dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets
PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "A100": 312.0}


def known_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_TFLOPS.items():
        if all(part in name for part in key.split()):
            return peak
    if "H100" in name:  # e.g. "NVIDIA H100 80GB HBM3" is the SXM part
        return PEAK_BF16_TFLOPS["H100 SXM"]
    return None


def build(experiment: str, size: int, attention_backend: str) -> tuple[PretrainModel, object]:
    overrides = [
        f"experiment={experiment}",
        f"model.backbone.img_size={size}",
        "model.backbone.checkpoint=null",
        "model.backbone.require_checkpoint=false",
        f"model.attention={attention_backend}",
    ]
    with initialize_config_module(config_module="psfm.configs", version_base="1.3"):
        cfg = compose("pretrain", overrides=overrides)
    with open_dict(cfg):
        cfg.model.teachers = {"pixels": {"name": "pixels", "weight": 1.0}}
    command = OmegaConf.to_object(cfg)
    return PretrainModel(command.model, total_steps=1000), command


def training_step(model: PretrainModel, optimizer, batch, autocast) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        loss = model(batch)["loss"]
    loss.backward()
    optimizer.step()


def count_flops(args, batch, device: torch.device, autocast) -> int:
    """FLOPs of one step, counted on an SDPA twin of the model with attention on the math path.

    The counter sees matmuls; fused attention kernels (CPU flash, xformers) are invisible to it, so
    the math path (the same FLOPs, spelled as matmuls) is what gets counted.
    """
    torch.manual_seed(0)
    twin, command = build(args.experiment, args.size, "sdpa")
    twin.to(device)
    optimizer, _ = build_optimizer(twin.trainable_parameters(), command.optim, 1000)
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        training_step(twin, optimizer, batch, autocast)
    del twin, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return counter.get_total_flops()


def attention_parity(device: torch.device) -> None:
    if device.type != "cuda" or not _xformers_importable():
        print("attention parity: skipped (needs CUDA and xformers)")
        return
    generator = torch.Generator(device).manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(4, 12, 1024, 64, device=device, generator=generator, dtype=dtype) for _ in range(3))
        difference = (attention(q, k, v, "xformers").float() - attention(q, k, v, "sdpa").float()).abs().max()
        print(f"attention parity ({dtype}): max |xformers - sdpa| = {difference.item():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="spa3r")
    parser.add_argument("--batch", type=int, default=3, help="scenes per step")
    parser.add_argument("--views", type=int, default=8, help="views per scene (half context, half target)")
    parser.add_argument("--size", type=int, default=518, help="square image side (a multiple of the patch size)")
    parser.add_argument("--attention", default="auto", choices=("auto", "sdpa", "xformers"))
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--compile", action="store_true", help="torch.compile every transformer block")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s of the device, in TFLOP/s")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    torch.manual_seed(0)
    model, command = build(args.experiment, args.size, args.attention)
    model.to(device)
    if args.compile:
        for module in model.modules():
            if isinstance(module, TRANSFORMER_BLOCKS):
                module.compile()
    optimizer, _ = build_optimizer(model.trainable_parameters(), command.optim, 1000)
    context = args.views // 2
    batch = synthetic_batch(args.batch, context, args.views - context, args.size).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        training_step(model, optimizer, batch, autocast)

    for _ in range(args.warmup):
        step()
    flops = count_flops(args, batch, device, autocast)
    times = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    trainable = sum(p.numel() for _, p in model.trainable_parameters())
    total = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{args.experiment} on {name}: B={args.batch} x V={args.views} at {args.size}px, {'bf16' if bf16 else 'fp32'}, "
        f"attention={args.attention}, compile={args.compile}"
    )
    print(f"  parameters: {total / 1e6:.1f} M ({trainable / 1e6:.1f} M trainable)")
    print(f"  step: {seconds * 1000:.1f} ms (median of {args.steps}), {args.batch * args.views / seconds:.1f} views/s")
    achieved = flops / seconds / 1e12
    print(f"  model FLOPs per step: {flops / 1e9:.1f} GFLOP; achieved {achieved:.3f} TFLOP/s")
    peak = args.peak_tflops or known_peak(device)
    if peak:
        print(f"  MFU: {100 * achieved / peak:.1f} % of {peak:.0f} TFLOP/s")
    else:
        print("  MFU: give --peak-tflops for this device")
    if device.type == "cuda":
        print(f"  peak memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    attention_parity(device)


if __name__ == "__main__":
    main()
