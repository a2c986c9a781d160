#!/usr/bin/env bash
# `mpirun -np 2 moesim plan` against one process (issue 15 point 3) on tests/data/plan-toy.yaml. Guaranteed
# (sim/plan.hpp PlanOptions): the same winner and runner-up; the CSV has the same rows in the same order, and
# every row that is not a pruned-or-simulated loser is byte-identical (a candidate simulated in both runs has
# the same figures; invalid / infeasible ones the same reason). Which losers are `pruned` rather than
# `simulated` depends on how the work was split, as it depends on --jobs in one process.
# Usage: mpi_plan_test.sh MOESIM MPIEXEC SOURCE_DIR WORK_DIR   (ctest runs it; exit 77 = skipped)
set -u
moesim=$1 mpiexec=$2 src=$3 work=$4
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
# The same OpenMPI settings as mpi_sweep_test.sh (root in containers, the fork note, loopback, no CMA).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_warn_on_fork=0
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_btl_vader_single_copy_mechanism=none
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fail() { echo "FAIL: $*"; exit 1; }
plan=(plan "$src/tests/data/plan-toy.yaml" --jobs 1)

"$moesim" "${plan[@]}" --csv one.csv > one.out 2>&1 || { cat one.out; fail "one-process plan: exit $?"; }
"$mpiexec" -np 2 --oversubscribe "$moesim" "${plan[@]}" --csv two.csv > two.out 2>&1 ||
  { cat two.out; fail "mpirun -np 2 plan: exit $?"; }
cat two.out
for who in winner runner-up; do
  a=$(grep -A2 "^$who:" one.out) b=$(grep -A2 "^$who:" two.out)
  [ -n "$a" ] || fail "no $who in the one-process answer"
  [ "$a" = "$b" ] || fail "$who differs: one process '$a', mpirun '$b'"
done
grep -q "^rank 1/2: simulating candidate" two.out || fail "rank 1 simulated nothing"
grep -q "^rank 0/2: simulating candidate" two.out || fail "rank 0 simulated nothing"
[ "$(wc -l < one.csv)" -eq "$(wc -l < two.csv)" ] || fail "the CSVs have different row counts"
[ "$(head -1 one.csv)" = "$(head -1 two.csv)" ] || fail "the CSV headers differ"
same=0
while IFS= read -r a <&3 && IFS= read -r b <&4; do
  case "$a$b" in
    *,pruned,*) [ "${a%%,*}" = "${b%%,*}" ] || fail "rows out of order: '$a' / '$b'" ;;
    *) [ "$a" = "$b" ] || fail "row differs: one process '$a', mpirun '$b'"; same=$((same + 1)) ;;
  esac
done 3< one.csv 4< two.csv
echo "PASS: mpirun -np 2 plan: same winner and runner-up; $same CSV lines identical, the others pruned in one run"
