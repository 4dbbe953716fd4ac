#!/usr/bin/env bash
# Run the GPU suite (python -m sivae_core suite) on a machine lent for a few minutes, and keep what it produces.
#
#   bash scripts/gpu_run.sh prepare JOB... [--streams]
#                                          here: copy the data the jobs need into gpu_carry/ (ignored by git, named
#                                          in the run tool's `carry`), record the commit, the jobs and the suite's flags;
#                                          refuses a dirty tree, more data than one call carries, and no jobs (the whole
#                                          plan does not fit a call: `python -m sivae_core suite --list` says what is
#                                          stored of each)
#   bash scripts/gpu_run.sh device [S]     on the GPU machine (the run tool's command, carry ["gpu_carry"],
#                                          timeout_s 590): the prepared jobs within S seconds (default 540), output in $OUT
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
    shift
    jobs=() flags=()
    for arg in "$@"; do case "$arg" in --*) flags+=("$arg") ;; *) jobs+=("$arg") ;; esac; done
    for flag in "${flags[@]}"; do
      [ "$flag" = --streams ] || { echo "unknown flag $flag (the suite's flags for a call: --streams)" >&2; exit 2; }
    done
    rm -rf gpu_carry && mkdir -p gpu_carry/data
    git rev-parse HEAD > gpu_carry/COMMIT
    echo "${flags[*]}" > gpu_carry/FLAGS
    python - "${jobs[@]}" <<'PY'
import shutil
import sys
from pathlib import Path
from sivae_core.data.images import first_root_holding
from sivae_core.experiments.suite import JOBS
# The run tool carries 64 MiB in all, the working tree (about 12 MiB) included.
LIMIT_MIB = 50
names = sys.argv[1:]
if not names:
    sys.exit("name the jobs for this call (one call holds about 9 minutes of GPU, the whole plan does not fit): "
             "python -m sivae_core suite --list shows each job and what is stored of it")
unknown = set(names) - {job.name for job in JOBS}
if unknown:
    sys.exit(f"unknown job(s) {sorted(unknown)}; the plan has {[job.name for job in JOBS]}")
copied = set()
for job in (job for job in JOBS if job.name in names):
    for need in (n for n in job.needs if n not in copied):
        src, dst = first_root_holding(need), Path("gpu_carry/data") / need
        if src is None:
            sys.exit(f"{job.name} needs {need}, found under no data root: set SIVAE_DATA")
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
        copied.add(need)
        print(f"{job.name}: {need}")
size = sum(f.stat().st_size for f in Path("gpu_carry").rglob("*") if f.is_file()) / 2**20
if size > LIMIT_MIB:
    shutil.rmtree("gpu_carry")
    sys.exit(f"{size:.0f} MiB of data for {names}: more than one call can carry ({LIMIT_MIB} MiB); prepare fewer jobs")
Path("gpu_carry/JOBS").write_text(" ".join(names) + "\n")
PY
    du -sh gpu_carry
    echo "run tool: command 'bash scripts/gpu_run.sh device', carry [\"gpu_carry\"], timeout_s 590"
    ;;
  device)
    export SIVAE_COMMIT="$(cat gpu_carry/COMMIT)" SIVAE_DATA="$PWD/gpu_carry/data" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    # shellcheck disable=SC2046  # the job names and flags are words
    python3 -m sivae_core suite --out "$OUT" --budget-s "${2:-540}" --only $(cat gpu_carry/JOBS) $(cat gpu_carry/FLAGS) 2>&1 \
      | tee "$OUT/suite_log.txt"
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
    sed -n '2,13p' "$0"; exit 2
    ;;
esac
