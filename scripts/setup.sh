#!/usr/bin/env bash
# Create (or reuse) .venv and install the pinned book environment plus sivae_core in editable mode.
# Re-installs only when requirements.txt or pyproject.toml changed (a stamp file records their hash).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.sivae-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -r requirements.txt
  # --no-deps: the pins above already hold every dependency; torch must not be resolved twice.
  python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
