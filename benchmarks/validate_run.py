"""Re-score a finished pretraining run on its validation scenes with today's metrics.

Runs logged before a metric existed (e.g. ``depth_probe/target_abs_rel_aligned``) can be compared with
new ones without retraining: the run's ``config.yaml`` rebuilds its data, ``checkpoints/last.ckpt`` its
model, and every validation batch (``trainer.limit_val_batches`` of them, as in training) is scored.

    python benchmarks/validate_run.py outputs/pretrain/oracle outputs/pretrain/oracle_frozen --match depth_probe/

``--context reference`` shows the encoder the reference view alone (context views 1..C-1 dropped;
targets, their poses and the references' truth unchanged): the rise in unseen-view error is what the
other context views contribute, i.e. whether the encoder fuses views or describes its reference view.
The ``ref_*`` references are computed from the context the encoder was shown, so they move too.

``--set KEY=VALUE`` overrides the run's config before its data is rebuilt, so runs trained with
different view sampling are scored on the same validation views, e.g. both arms of an A/B on the
default draw (``--set datamodule.views.target_overlap=0``) or on targets that only the non-reference
context views show (``--set datamodule.views.target_overlap=0.3 datamodule.views.target_overlap_from=others``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from pathlib import Path

import torch
from omegaconf import OmegaConf

from psfm.datamodules.datamodule import SceneDataModule
from psfm.training.config import PretrainCommand
from psfm.training.module import PretrainModule


@torch.no_grad()
def validate(
    run_dir: Path, batches: int | None = None, context: str = "all", overrides: list[str] | None = None
) -> dict[str, float]:
    config = OmegaConf.merge(OmegaConf.structured(PretrainCommand), OmegaConf.load(run_dir / "config.yaml"))
    command = OmegaConf.to_object(OmegaConf.merge(config, OmegaConf.from_dotlist(overrides or [])))
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    module = PretrainModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    model = module.model.eval()
    datamodule = SceneDataModule(command.datamodule)
    datamodule.setup("validate")
    limit = batches or command.trainer.limit_val_batches
    sums, counts = defaultdict(float), defaultdict(int)
    for index, batch in enumerate(datamodule.val_dataloader()):
        if index >= limit:
            break
        if context == "reference":
            batch = dataclasses.replace(batch, context_index=batch.context_index[:, :1])
        for key, value in model(batch).items():
            sums[key] += float(value) * batch.batch_size
            counts[key] += batch.batch_size
    return {key: sums[key] / counts[key] for key in sorted(sums)} | {"step": float(checkpoint["global_step"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--match", default="", help="only metrics whose name contains this")
    parser.add_argument("--batches", type=int, default=None, help="validation batches (default: the run's limit)")
    parser.add_argument(
        "--context",
        choices=("all", "reference"),
        default="all",
        help="what the encoder sees: every context view (default) or the reference view alone",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every run, after the runs, e.g. datamodule.views.target_overlap=0",
    )
    args = parser.parse_args()
    results = {run.name: validate(run, args.batches, args.context, args.set) for run in args.runs}
    keys = sorted({key for metrics in results.values() for key in metrics if args.match in key})
    width = max(len(key) for key in keys)
    print(f"{'metric':<{width}} " + " ".join(f"{name:>14}" for name in results))
    for key in keys:
        print(f"{key:<{width}} " + " ".join(f"{metrics.get(key, float('nan')):>14.4f}" for metrics in results.values()))


if __name__ == "__main__":
    main()
