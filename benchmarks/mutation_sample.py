"""A seeded random sample of the mutants of some modules, for a mutation score estimated in hours, not days.

Usage: ``python benchmarks/mutation_sample.py FRACTION [path ...] [--seed N]`` from the repository root, after
mutmut has generated the mutants (``benchmarks/mutation.sh`` does: ``MUTMUT_SAMPLE=0.1 bash
benchmarks/mutation.sh ...``). Prints one mutant name per line: ``FRACTION`` of each module's mutants (at
least one), drawn uniformly without replacement, so a sample score estimates the module's full score. The
sample is stratified by module, and the same seed draws the same mutants of a module whose code did not
change, so a re-run after new tests re-tests the same ones.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys

from mutation_summary import STATUS, metas


def sample(paths: list[str], fraction: float, seed: int) -> list[str]:
    # one generator per module, seeded by the seed and the module's path: a module whose code changes (and so
    # gains or loses mutants) redraws its own sample only, not every module after it
    chosen: list[str] = []
    for meta in metas(paths):
        keys = sorted(json.loads(meta.read_text())["exit_code_by_key"])
        if keys:
            rng = random.Random(f"{seed}:{meta.as_posix()}")
            chosen += sorted(rng.sample(keys, max(1, math.ceil(fraction * len(keys)))))
    return chosen


def to_retest(names: list[str]) -> list[str]:
    """The sampled mutants whose verdict new tests can change: not checked yet, or not caught (caught is killed
    or timed out, as ``mutation_summary`` counts it). A caught mutant stays caught while tests are only added
    (mutmut clears the verdicts of a function whose code changed); delete ./mutants/ after weakening a test."""
    verdicts: dict[str, int | None] = {}
    for meta in metas([]):
        verdicts.update(json.loads(meta.read_text())["exit_code_by_key"])
    return [name for name in names if STATUS.get(verdicts.get(name)) not in ("killed", "timeout")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fraction", type=float, help="share of each module's mutants, in (0, 1]")
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retest", help="also write the sampled mutants not caught yet (to_retest) to this file")
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
    if args.retest:
        with open(args.retest, "w") as file:
            file.write("".join(f"{name}\n" for name in to_retest(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
