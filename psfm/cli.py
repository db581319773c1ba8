"""The ``psfm`` command line: one front door, one Hydra-configured subcommand per job."""

from __future__ import annotations

import difflib
import importlib
import sys

# name -> (module with a Hydra `main`, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "world": ("psfm.commands.world", "render the procedural multi-view world into train/val scene shards"),
    "convert": ("psfm.commands.convert", "turn a capture (transforms.json, COLMAP, ScanNet, image folder) into shards"),
    "shards": ("psfm.commands.shards", "verify and summarize a shard set, then stream batches through the loader"),
    "qa": ("psfm.commands.qa", "generate spatial questions with exact answers for a shard set (QA shards + JSONL)"),
    "eval": ("psfm.commands.eval", "score predictions on spatial questions: accuracy, MRA, baselines, bootstrap CIs"),
    "pretrain": ("psfm.commands.pretrain", "pretrain a spatial encoder with PSFM (default: world_tiny on CPU)"),
    "adapt": (
        "psfm.commands.adapt",
        "train a VLM adapter over a frozen encoder on spatial QA and score it (SmolLM2 offline)",
    ),
    "probe": ("psfm.commands.probe", "measure what frozen encoders know about 3D against baselines (report + figures)"),
}

OVERVIEW = """\
psfm: Predictive Spatial Field Modeling, self-supervised spatial encoders from unposed multi-view images.

Usage: psfm <command> [key=value ...]     (Hydra overrides; `psfm <command> --help` lists every key)

Commands:
{commands}

Start here:
  psfm world                    # write the embedded procedural world to data/world/{{train,val}}
  psfm shards                   # check it and stream MultiViewBatches through the loader
  psfm qa                       # spatial questions with exact answers for data/world/val -> data/qa/val
  psfm pretrain                 # pretrain the encoder on it (world_tiny: minutes on 2 CPU cores)
  psfm probe                    # what the exported encoder knows about 3D, against its random-init twin

Every command also takes Hydra's flags: --cfg job (print the resolved config), --multirun, -cd DIR.
"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(map(len, COMMANDS))
        listing = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items())
        print(OVERVIEW.format(commands=listing))
        return
    name = argv[0]
    if name not in COMMANDS:
        hint = difflib.get_close_matches(name, COMMANDS, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        sys.exit(f"psfm: unknown command '{name}'{suggestion} (commands: {', '.join(COMMANDS)})")
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"psfm {name}", *argv[1:]]
    module.main()


if __name__ == "__main__":
    main()
