#!/usr/bin/env bash
# Runs every libFuzzer harness of BUILD for SECONDS each, seeded from tests/bad and the shipped files.
# A crash leaves crash-* in build-fuzz/findings/<target>/; turn each into a tests/bad case with its message.
# Usage: tools/fuzz.sh [BUILD] [SECONDS] [SEED]   SEED 0 (default): libFuzzer picks one (explores more over
# repeated runs); a fixed SEED (CI) replays the same mutations, cut at the time limit.
set -euo pipefail
BUILD=$(realpath -m "${1:-build-fuzz}")  # absolute: the harnesses run from their findings folder
SECONDS_PER=${2:-60}
SEED=${3:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
declare -A seeds=(
  [scenario]="$root/tests/bad $root/scenarios $root/scenarios/bench"
  [profile]="$root/models/profiles $root/tests/data $root/tests/bad/inputs"
  [trace]="$root/tests/bad $root/tests/data"
  [raw]="$root/tests/calibrate/fixtures"
)
failed=()
for t in scenario profile trace raw; do
  bin="$BUILD/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || continue
  corpus="$BUILD/findings/$t/corpus"
  mkdir -p "$corpus"
  for d in ${seeds[$t]}; do
    [ -d "$d" ] && find "$d" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.csv' \) -exec cp -t "$corpus" {} +
  done
  echo "fuzz: $t for ${SECONDS_PER}s"
  # Every target runs even when an earlier one found something; the script fails at the end.
  # The full log stays in findings/<target>/log; its end (the final stats, or the finding's report) is shown.
  if ! (cd "$BUILD/findings/$t" && ASAN_OPTIONS=detect_leaks=0 "$bin" -max_total_time="$SECONDS_PER" -seed="$SEED" \
          -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 corpus >log 2>&1); then
    failed+=("$t")
  fi
  tail -n 60 "$BUILD/findings/$t/log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]} (see $BUILD/findings/<target>/crash-*, timeout-*, oom-*)" >&2
  exit 1
fi
