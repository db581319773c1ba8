#!/usr/bin/env bash
# Mutation testing, on demand (never in CI): mutmut 3 (configured in pyproject.toml [tool.mutmut]) over the
# given modules or package folders, then the per-module score table. See docs/testing.md.
#
#   bash benchmarks/mutation.sh                          # the modules issue #14 scores (long: hours on 2 cores)
#   bash benchmarks/mutation.sh psfm/qa/metrics.py psfm/objectives/
#   MUTMUT_CHILDREN=2 bash benchmarks/mutation.sh ...    # parallel mutants (default 1: the box is shared)
#   MUTMUT_SAMPLE=0.08 bash benchmarks/mutation.sh ...   # a seeded 8 % of each module's mutants (an estimate;
#                                                        # generated first if ./mutants/ has none); re-runs
#                                                        # test only the sampled mutants not caught yet
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
if [ -n "${MUTMUT_SAMPLE:-}" ]; then  # the same seed draws the same mutants: re-runs re-test the same sample
  if ! compgen -G "mutants/psfm/*.py.meta" > /dev/null; then
    # nothing generated yet: `mutmut run` generates the mutants and maps tests to functions before it filters
    # by name, so a name that matches nothing does just that (and then stops, saying nothing matched)
    echo "generating the mutants and the test map (several minutes) ..."
    mkdir -p mutants
    "$MUTMUT" run --max-children "${MUTMUT_CHILDREN:-1}" "no.such.mutant" > mutants/generate.log 2>&1 || true
    compgen -G "mutants/psfm/*.py.meta" > /dev/null || { cat mutants/generate.log >&2; exit 1; }
  fi
  "$PY" benchmarks/mutation_sample.py "$MUTMUT_SAMPLE" "$@" --seed "${MUTMUT_SEED:-0}" \
    --retest mutants/retest.txt > mutants/sample.txt
  mapfile -t names < mutants/retest.txt  # caught ones stay caught: only the unchecked and the survivors run
  echo "sampled $(wc -l < mutants/sample.txt) mutants (mutants/sample.txt), ${#names[@]} to (re-)test"
  [ ${#names[@]} -eq 0 ] || "$MUTMUT" run --max-children "${MUTMUT_CHILDREN:-1}" "${names[@]}"
  summary=(--only mutants/sample.txt)
else
  "$MUTMUT" run --max-children "${MUTMUT_CHILDREN:-1}" "${globs[@]}"
  summary=()
fi
echo "mutmut: $(($(date +%s) - start)) s wall"
"$PY" benchmarks/mutation_summary.py "${summary[@]}" "$@"
