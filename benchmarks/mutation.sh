#!/usr/bin/env bash
# Mutation testing, on demand (never in CI): mutmut 3 (configured in pyproject.toml [tool.mutmut]) over the
# given modules or package folders, then the per-module score table. See docs/testing.md.
#
#   bash benchmarks/mutation.sh                          # the modules issue #14 scores (long: hours on 2 cores)
#   bash benchmarks/mutation.sh psfm/qa/metrics.py psfm/objectives/
#   MUTMUT_CHILDREN=2 bash benchmarks/mutation.sh ...    # parallel mutants (default 1: the box is shared)
#
# Results accumulate in ./mutants/ (git-ignored); `mutmut results` lists the survivors, `mutmut show NAME`
# shows one as a diff. Delete ./mutants/ to start over (it also holds the test → function map, which
# mutmut only extends for new tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MUTMUT=${MUTMUT:-$(dirname "$PY")/mutmut}

if [ $# -eq 0 ]; then
  set -- psfm/geometry.py psfm/objectives/ psfm/layers/ psfm/datamodules/ psfm/training/ \
    psfm/teachers/ema.py psfm/qa/metrics.py psfm/qa/parsing.py
fi

# a module path → the glob of its mutant names: psfm/qa/metrics.py → psfm.qa.metrics.*
globs=()
for path in "$@"; do
  [ -e "$path" ] || { echo "no such module or folder: $path" >&2; exit 2; }
  module=${path%.py}
  module=${module%/}
  globs+=("${module//\//.}.*")
done

# one torch thread per mutant. mutmut puts ./mutants first on sys.path itself; the few tests that start
# `python -m psfm.cli` in a subprocess get the unmutated repository (a mutant there would crash: mutmut's
# trampoline looks for pyproject.toml in the working directory, a tmp_path)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONPATH="$PWD"
start=$(date +%s)
"$MUTMUT" run --max-children "${MUTMUT_CHILDREN:-1}" "${globs[@]}"
echo "mutmut: $(($(date +%s) - start)) s wall"
"$PY" benchmarks/mutation_summary.py "$@"
