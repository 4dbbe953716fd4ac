#!/usr/bin/env bash
# Build the book on a fresh machine: set-up, execute every notebook in fast mode with papermill
# (outputs stored in the notebooks), then render HTML to _build/html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export MPLBACKEND=Agg PYTHONHASHSEED=0
python scripts/build_book.py "$@"
