#!/usr/bin/env bash
# Run the GPU suite (python -m sivae_core suite) on a machine lent for a few minutes, and keep what it produces.
#
#   bash scripts/gpu_run.sh prepare        here: copy the data the suite's jobs need into gpu_carry/ (ignored by git,
#                                          named in the run tool's `carry`) and record the commit; refuses a dirty tree
#   bash scripts/gpu_run.sh device [S]     on the GPU machine (the run tool's command, carry ["gpu_carry"],
#                                          timeout_s 590): the suite within S seconds (default 540), output in $OUT
#   bash scripts/gpu_run.sh unpack DIR     here: unpack DIR/suite_results.tar.gz into book/results/, then commit
#
# What comes back from $OUT: suite_results.tar.gz (every job's result files), summary.json and suite_log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
      echo "commit first: stored results must come from committed code" >&2; exit 1
    fi
    rm -rf gpu_carry && mkdir -p gpu_carry/data
    git rev-parse HEAD > gpu_carry/COMMIT
    python - <<'PY'
import shutil
from pathlib import Path
from sivae_core.book import data_root
from sivae_core.experiments.suite import JOBS
root = data_root()
for job in JOBS:
    for need in job.needs:
        src, dst = root / need, Path("gpu_carry/data") / need
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
        print(f"{job.name}: {need}")
PY
    du -sh gpu_carry
    echo "run tool: command 'bash scripts/gpu_run.sh device', carry [\"gpu_carry\"], timeout_s 590"
    ;;
  device)
    export SIVAE_COMMIT="$(cat gpu_carry/COMMIT)" SIVAE_DATA="$PWD/gpu_carry/data" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    python3 -m sivae_core suite --out "$OUT" --budget-s "${2:-540}" 2>&1 | tee "$OUT/suite_log.txt"
    ;;
  unpack)
    dir="${2:?usage: gpu_run.sh unpack DIR}"
    tmp="$(mktemp -d)"
    tar xzf "$dir/suite_results.tar.gz" -C "$tmp"
    find "$tmp" -type f \( -name '*.json' -o -name '*.npz' -o -name '*.png' \) -exec cp {} book/results/ \;
    cp "$dir/summary.json" book/results/suite_summary.json
    ls -l book/results/suite_* book/results/cifar10_* 2>/dev/null || true
    echo "now: look at book/results/suite_summary.json, then git add book/results && git commit"
    ;;
  *)
    sed -n '2,12p' "$0"; exit 2
    ;;
esac
