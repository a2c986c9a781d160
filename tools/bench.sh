#!/usr/bin/env bash
# Benchmarks (not tests): runs every scenario in scenarios/bench/ at its default fidelity and prints host wall
# time, peak memory (max RSS of moesim and its simulation children) and simulated ops per second.
# Targets: a bench file's "# bench-target: wall_s=X [rss_mib=Y]" line; each row says met or MISSED, and the
# script exits 1 when any target was missed (after running them all).
# Capacity plans (scenarios/plan-*.yaml) run through `moesim plan`, their target being the plan's answer time.
# Usage: tools/bench.sh [BUILD_DIR]   (make bench). BENCH_SCENARIOS, BENCH_SWEEPS, BENCH_COLLECTIVES, BENCH_PLANS:
# the files of each section instead of all of them (a name that is not a file, e.g. none, skips the section)
set -euo pipefail
missed=0
# check FILE WALL_S RSS_KIB -> prints "met (target ...)" or "MISSED (target ...)" (run in $(...): the caller
# counts the misses).
check() {
  local t wall_t rss_t verdict
  t=$(grep -m1 -o 'bench-target:.*' "$1" || true)
  [ -n "$t" ] || { echo "no target"; return; }
  wall_t=$(echo "$t" | grep -o 'wall_s=[0-9.]*' | cut -d= -f2 || true)
  rss_t=$(echo "$t" | grep -o 'rss_mib=[0-9.]*' | cut -d= -f2 || true)
  verdict=$(awk -v w="$2" -v r="$3" -v wt="${wall_t:-0}" -v rt="${rss_t:-0}" \
    'BEGIN {ok = (wt == 0 || w <= wt) && (rt == 0 || r / 1024 <= rt); print ok ? "met" : "MISSED"}')
  echo "$verdict (target${wall_t:+ ${wall_t} s}${rss_t:+, ${rss_t} MiB})"
}
build=${1:-build}
bin="$build/moesim"
[ -x "$bin" ] || { echo "bench: $bin not built (run make build)" >&2; exit 1; }
printf '%-22s %10s %12s %10s %14s %10s %-12s %s\n' scenario wall_s peak_rss_MiB ops sim_ops_per_s fidelity step_time target
for f in ${BENCH_SCENARIOS:-scenarios/bench/*.yaml}; do
  [ -f "$f" ] || continue  # BENCH_...=none skips a section
  name=$(basename "$f" .yaml)
  json=$(mktemp)
  tlog=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tlog" "$bin" run "$f" --quiet --jobs 1 --json "$json"
  read -r wall rss_kib < "$tlog"
  # The JSON is pretty-printed one key per line; sum "ops" over variants, take the first step time.
  ops=$(grep -o '"ops": [0-9]*' "$json" | awk '{s += $2} END {print s}')
  step=$(grep -o '"step_time_s": [0-9.e+-]*' "$json" | head -1 | awk '{printf "%.3f ms", $2 * 1e3}')
  fid=$(grep -o '"fidelity": "[a-z]*"' "$json" | head -1 | cut -d'"' -f4)
  verdict=$(check "$f" "$wall" "$rss_kib")
  [[ $verdict == MISSED* ]] && missed=1
  awk -v n="$name" -v w="$wall" -v r="$rss_kib" -v o="$ops" -v f="$fid" -v s="$step" -v v="$verdict" \
    'BEGIN {printf "%-22s %10.2f %12.1f %10d %14.0f %10s %-12s %s\n", n, w, r / 1024, o, o / w, f, s, v}'
  rm -f "$json" "$tlog"
done
# Sweeps (issue 15 point 6): every scenario in scenarios/bench/sweeps/ through `moesim sweep --jobs 2`.
printf '\n%-26s %10s %12s %8s %8s %12s %s\n' sweep wall_s peak_rss_MiB points rows points_per_s target
for f in ${BENCH_SWEEPS:-scenarios/bench/sweeps/*.yaml}; do
  [ -f "$f" ] || continue  # BENCH_...=none skips a section
  name=$(basename "$f" .yaml)
  csv=$(mktemp)
  tlog=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tlog" "$bin" sweep "$f" --quiet --jobs 2 --csv "$csv"
  read -r wall rss_kib < "$tlog"
  rows=$(($(wc -l < "$csv") - 1))
  points=$(tail -n +2 "$csv" | cut -d, -f1 | sort -u | wc -l)
  verdict=$(check "$f" "$wall" "$rss_kib")
  [[ $verdict == MISSED* ]] && missed=1
  awk -v n="$name" -v w="$wall" -v r="$rss_kib" -v p="$points" -v k="$rows" -v v="$verdict" \
    'BEGIN {printf "%-26s %10.2f %12.1f %8d %8d %12.1f %s\n", n, w, r / 1024, p, k, p / w, v}'
  rm -f "$csv" "$tlog"
done
# Bare collectives (issue 14 point 4): every cluster file in scenarios/bench/collectives/ through
# `moesim collective`, with the arguments of its "# bench-collective: KIND ARGS" line.
printf '\n%-26s %10s %12s %8s %14s %s\n' collective wall_s peak_rss_MiB ranks busbw_GBps target
for f in ${BENCH_COLLECTIVES:-scenarios/bench/collectives/*.yaml}; do
  [ -f "$f" ] || continue  # BENCH_...=none skips a section
  name=$(basename "$f" .yaml)
  read -r -a args <<< "$(grep -m1 -o 'bench-collective:.*' "$f" | cut -d: -f2-)"
  csv=$(mktemp)
  tlog=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tlog" "$bin" collective "${args[@]}" --cluster "$f" --csv "$csv" > /dev/null
  read -r wall rss_kib < "$tlog"
  # CSV columns by header name: ranks and busbw of the (last) size.
  ranks=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; ++i) if ($i ~ /^ranks/) c = i} NR > 1 {v = $c} END {print v}' "$csv")
  busbw=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; ++i) if ($i ~ /^busbw/) c = i} NR > 1 {v = $c} END {print v}' "$csv")
  verdict=$(check "$f" "$wall" "$rss_kib")
  [[ $verdict == MISSED* ]] && missed=1
  awk -v n="$name" -v w="$wall" -v r="$rss_kib" -v k="$ranks" -v b="$busbw" -v v="$verdict" \
    'BEGIN {printf "%-26s %10.2f %12.1f %8s %14s %s\n", n, w, r / 1024, k, b, v}'
  rm -f "$csv" "$tlog"
done
# Capacity plans (issue 15 point 6): every shipped scenarios/plan-*.yaml through `moesim plan --jobs 2`; the
# target is the plan's answer time (its own "# bench-target:" line).
printf '\n%-26s %10s %12s %10s %10s %s\n' plan wall_s peak_rss_MiB candidates simulated target
for f in ${BENCH_PLANS:-scenarios/plan-*.yaml}; do
  [ -f "$f" ] || continue  # BENCH_...=none skips a section
  name=$(basename "$f" .yaml)
  csv=$(mktemp)
  tlog=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tlog" "$bin" plan "$f" --quiet --jobs 2 --csv "$csv" > /dev/null
  read -r wall rss_kib < "$tlog"
  cands=$(($(wc -l < "$csv") - 1))
  sims=$(grep -c ',simulated,' "$csv" || true)
  verdict=$(check "$f" "$wall" "$rss_kib")
  [[ $verdict == MISSED* ]] && missed=1
  awk -v n="$name" -v w="$wall" -v r="$rss_kib" -v c="$cands" -v s="$sims" -v v="$verdict" \
    'BEGIN {printf "%-26s %10.2f %12.1f %10d %10d %s\n", n, w, r / 1024, c, s, v}'
  rm -f "$csv" "$tlog"
done
exit "$missed"
