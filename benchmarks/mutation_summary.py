"""Per-module mutation score from mutmut's results in ``mutants/`` (run ``benchmarks/mutation.sh`` first).

Usage: ``python benchmarks/mutation_summary.py [--survivors] [path ...]`` from the repository root. A path is
a module (``psfm/geometry.py``) or a package folder (``psfm/objectives/``); without paths, every module
mutmut has results for. Prints one Markdown table row per module: mutants, killed, survived, timeout,
no tests, not checked, and the score = (killed + timeout) / (mutants - not checked), mutmut's own
definition (its ``badge`` command), so unchecked mutants are not counted either way. ``--only FILE`` counts
only the mutants named in FILE (a sample from ``benchmarks/mutation_sample.py``); the score column then
carries a 95 % Wilson interval, the range the full modules' score lies in given the sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

# mutmut's exit-code → status table (mutmut/stats.py), restricted to the statuses that can occur here
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}
STATUS |= {code: "timeout" for code in (36, -24, 24, 152, 255)}
STATUS |= {-11: "segfault", -9: "segfault"}
COLUMNS = ("killed", "survived", "timeout", "no tests", "not checked")


def metas(paths: list[str]) -> list[Path]:
    root = Path("mutants")
    found = sorted(root.rglob("psfm/**/*.py.meta"))
    if not paths:
        return found
    wanted = [str(root / p) for p in paths]

    def chosen(meta: Path) -> bool:
        module = str(meta).removesuffix(".meta")
        return any(module == w or module.startswith(w.rstrip("/") + "/") for w in wanted)

    return [m for m in found if chosen(m)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--survivors", action="store_true", help="also list every mutant that was not killed")
    parser.add_argument("--only", type=Path, help="a file of mutant names, one per line: count only those")
    args = parser.parse_args()
    only = set(args.only.read_text().split()) if args.only else None
    files = metas(args.paths)
    if not files:
        print("no mutmut results under mutants/ for those paths: run benchmarks/mutation.sh first", file=sys.stderr)
        return 1
    print("| module | mutants | killed | survived | timeout | no tests | not checked | score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total: Counter[str] = Counter()
    survivors: list[str] = []
    for meta in files:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if only is not None:
            codes = {key: code for key, code in codes.items() if key in only}
        counts = Counter(STATUS.get(code, "suspicious") for code in codes.values())
        counts["mutants"] = len(codes)
        if not codes or (only is None and counts["not checked"] == len(codes)):
            continue  # a module with no (sampled) mutants, or one of the folder that was not run
        total += counts
        survivors += [f"{key}: {STATUS.get(c, 'suspicious')}" for key, c in codes.items() if c not in (1, 3, None)]
        module = str(meta.relative_to("mutants")).removesuffix(".meta")
        print(row(module, counts, interval=only is not None))
    print(row("**total**", total, interval=only is not None))
    if args.survivors:
        print()
        print("\n".join(survivors))
    return 0


def row(name: str, counts: Counter[str], interval: bool = False) -> str:
    checked = counts["mutants"] - counts["not checked"]
    caught = counts["killed"] + counts["timeout"]
    score = f"{100 * caught / checked:.1f} %" if checked else "–"
    if interval and checked:
        low, high = wilson(caught, checked)
        score += f" ({100 * low:.0f}–{100 * high:.0f})"
    return f"| {name} | {counts['mutants']} | " + " | ".join(str(counts[c]) for c in COLUMNS) + f" | {score} |"


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (sound at 0 or 100 %, unlike the normal one)."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


if __name__ == "__main__":
    sys.exit(main())
