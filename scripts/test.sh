#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up; the lint; unit tests (including each chapter's conventions,
# papermill's parameter injection and a simulated Colab install); every notebook re-executed in fast mode and its
# stored outputs compared by nbval (strict); and the book rendered from those outputs with warnings as errors.
#
# Two worker processes with one torch thread each: the book's models are small, and two threads on a 2-core
# machine that is also doing other work stall every small parallel region (measured up to 60x). CI=true makes a
# missing ../shared/data a failure instead of a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export MPLBACKEND=Agg PYTHONHASHSEED=0 OMP_NUM_THREADS=1 CI="${CI:-true}"
start=$(date +%s)
ruff check sivae_core tests benchmarks scripts
python -m pytest tests -q -n 2
echo "unit tests done after $(( $(date +%s) - start )) s"
SIVAE_PROGRESS=0 python -m pytest --nbval book -q -p no:cacheprovider -n 2 --dist loadfile
echo "notebooks done after $(( $(date +%s) - start )) s"
python scripts/build_book.py --no-execute
echo "test suite finished in $(( $(date +%s) - start )) s"
