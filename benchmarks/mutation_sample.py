"""A seeded random sample of the mutants of some modules, for a mutation score estimated in hours, not days.

Usage: ``python benchmarks/mutation_sample.py FRACTION [path ...] [--seed N]`` from the repository root, after
mutmut has generated the mutants (``benchmarks/mutation.sh`` does: ``MUTMUT_SAMPLE=0.1 bash
benchmarks/mutation.sh ...``). Prints one mutant name per line: ``FRACTION`` of each module's mutants (at
least one), drawn uniformly without replacement, so a sample score estimates the module's full score. The
sample is stratified by module, and the same seed draws the same mutants, so a re-run after new tests
re-tests the same ones.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys

from mutation_summary import metas


def sample(paths: list[str], fraction: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    chosen: list[str] = []
    for meta in metas(paths):
        keys = sorted(json.loads(meta.read_text())["exit_code_by_key"])
        if keys:
            chosen += sorted(rng.sample(keys, max(1, math.ceil(fraction * len(keys)))))
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fraction", type=float, help="share of each module's mutants, in (0, 1]")
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.fraction <= 1:
        parser.error(f"fraction must be in (0, 1], got {args.fraction}")
    names = sample(args.paths, args.fraction, args.seed)
    if not names:
        print(
            "no mutants under mutants/ for those paths: generate them first (benchmarks/mutation.sh)", file=sys.stderr
        )
        return 1
    print("\n".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
