#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up; unit tests (including each chapter's conventions and
# papermill's parameter injection); every notebook re-executed in fast mode and its stored outputs compared
# by nbval (strict); and the book rendered from those outputs with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export MPLBACKEND=Agg PYTHONHASHSEED=0
start=$(date +%s)
python -m pytest tests -q
SIVAE_PROGRESS=0 python -m pytest --nbval book -q -p no:cacheprovider
python scripts/build_book.py --no-execute
echo "test suite finished in $(( $(date +%s) - start )) s"
