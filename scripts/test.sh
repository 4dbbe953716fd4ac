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
# The chapters in two halves of about equal CPU time, one process each (xdist's loadfile scheduling took 1,352 s;
# chapter 6 alone is about 840). Measured on the CI machine without chapter 11 in the first half: 1,179 s and
# 1,320 s. The second half is every chapter not named in the first, so a new chapter is never left out.
heavy=(book/06_2d_experiments.ipynb book/08_ood.ipynb book/12_style.ipynb book/02_vae_elbo.ipynb
       book/11_translation.ipynb)
rest=()
for nb in book/*.ipynb; do [[ " ${heavy[*]} " == *" $nb "* ]] || rest+=("$nb"); done
nbval() { SIVAE_PROGRESS=0 python -m pytest --nbval "$@" -q -p no:cacheprovider; }
logs=$(mktemp -d)
nbval "${heavy[@]}" > "$logs/heavy.log" 2>&1 & first=$!
nbval "${rest[@]}" > "$logs/rest.log" 2>&1 & second=$!
status=0
wait "$first" || status=1
wait "$second" || status=1
cat "$logs/heavy.log" "$logs/rest.log"
rm -rf "$logs"
[ "$status" -eq 0 ] || { echo "notebooks failed (see above)"; exit 1; }
echo "notebooks done after $(( $(date +%s) - start )) s"
python scripts/build_book.py --no-execute
echo "test suite finished in $(( $(date +%s) - start )) s"
