#!/usr/bin/env bash
# Builds moesim-calibrate on a GPU machine with plain nvcc (no CMake, no yaml-cpp needed), runs the quick
# preset within a budget, and leaves the raw YAML and a log in $OUT. Meant for the lent H200 (~5-6 minutes
# in all: build ~1 min, run <= BUDGET_S + start-up); works on any CUDA 12.5+ machine.
#   OUT=/some/dir [BUDGET_S=200] [PRESET=quick] [ARCH=90] [GIT_SHA=...] calibrate/device-run.sh
# Then, where yaml-cpp is installed:  moesim-calibrate-fit $OUT/<gpu>-quick-raw.yaml --datasheet <profile> -o ...
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/calibrate-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/device-run.log") 2>&1

CUDA=${CUDA_HOME:-/usr/local/cuda}
NVCC=${NVCC:-$CUDA/bin/nvcc}
BUDGET_S=${BUDGET_S:-200}
PRESET=${PRESET:-quick}
ARCH=${ARCH:-90}
GIT_SHA=${GIT_SHA:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
BUILD=${BUILD:-/tmp/moesim-calibrate-build}
mkdir -p "$BUILD"

echo "== $(date -u +%FT%TZ) host $(hostname), preset $PRESET, budget ${BUDGET_S}s, sm_$ARCH, git $GIT_SHA"
nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,memory.used \
  --format=csv 2>/dev/null || echo "(nvidia-smi unavailable)"
"$NVCC" --version | tail -1

# NCCL is optional: without it the all_to_all section records that it could not run.
NCCL=()
for inc in "$CUDA/include" /usr/include; do
  if [ -f "$inc/nccl.h" ]; then
    for lib in "$CUDA/lib64" "$CUDA/lib" /usr/lib/x86_64-linux-gnu; do
      if ls "$lib"/libnccl.so* >/dev/null 2>&1; then NCCL=(-DMOESIM_HAVE_NCCL=1 -I"$inc" -L"$lib" -lnccl); break 2; fi
    done
  fi
done
echo "NCCL flags: ${NCCL[*]:-none}"

build() {  # $1 = C++ standard
  "$NVCC" -O3 -std="$1" -arch=sm_"$ARCH" -Xcompiler=-Wall,-Wextra -Icalibrate \
    -DMOESIM_GIT_SHA="\"$GIT_SHA\"" calibrate/bench/moesim_calibrate.cu -o "$BUILD/moesim-calibrate" \
    "${NCCL[@]}" -lcublasLt -lcublas
}
t0=$(date +%s)
# C++20 first; an older host compiler gets C++17 (the binary needs nothing newer).
build c++20 || { echo "C++20 build failed, retrying with C++17"; build c++17; } || { echo "BUILD FAILED"; exit 1; }
echo "== built in $(( $(date +%s) - t0 )) s"

"$BUILD/moesim-calibrate" --dry-run --preset "$PRESET" --budget-s "$BUDGET_S" | tail -2
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-')
RAW="$OUT/${GPU:-gpu}-$PRESET-raw.yaml"
# Hard stop 2 minutes after the budget: the YAML is rewritten after every section, so a killed run
# still leaves everything measured up to then.
timeout $(( BUDGET_S + 120 )) "$BUILD/moesim-calibrate" --preset "$PRESET" --budget-s "$BUDGET_S" \
  --out "$RAW" --git-sha "$GIT_SHA"
rc=$?
echo "== moesim-calibrate exit $rc after $(( $(date +%s) - t0 )) s; raw: $RAW"
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv 2>/dev/null || true
ls -l "$OUT"
exit $rc
