#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, unit tests, every notebook executed by papermill
# in fast mode, the notebooks' stored outputs checked by nbval (strict), and the book rendered.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export MPLBACKEND=Agg PYTHONHASHSEED=0
python -m pytest tests -q
python scripts/execute_notebooks.py --out _build/papermill
python -m pytest --nbval book -q -p no:randomly
python scripts/build_book.py --no-execute
