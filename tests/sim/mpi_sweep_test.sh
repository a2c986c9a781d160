#!/usr/bin/env bash
# `mpirun -np 2 moesim sweep` against one process (issue 15 point 3): the CSV, JSON and HTML must be the
# one-process files byte for byte; the ranks' shard CSVs are gone afterwards. Then a run stopped after one
# point per rank (MOESIM_SWEEP_STOP_AFTER, as on Ctrl-C) leaves each rank's shard CSV with its finished point,
# and the same mpirun command with --resume completes the same CSV, byte for byte.
# Usage: mpi_sweep_test.sh MOESIM MPIEXEC SOURCE_DIR WORK_DIR   (ctest runs it; exit 77 = skipped)
set -u
moesim=$1 mpiexec=$2 src=$3 work=$4
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
# Root in a container (CI): OpenMPI refuses root without these. --oversubscribe: 2 ranks on a 1-core runner too.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# The sweep forks its worker processes before MPI starts (sim/mpi_split.hpp); this silences OpenMPI's note
# about fork() in case a transport that cares is picked.
export OMPI_MCA_mpi_warn_on_fork=0
# Loopback only: no probing of the machine's other network interfaces (containers without a network).
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
# Containers often forbid the cross-process memory access (CMA) of the shared-memory transport: copy instead.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# Sanitizer builds (make test-asan already sets this): OpenMPI's own allocations are reported as leaks at exit
# (seen with a 2-rank MPI_Init/MPI_Finalize program built with gcc 12 -fsanitize=address, OpenMPI 4.1.4).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
mpirun=("$mpiexec" -np 2 --oversubscribe)
# 6 points (2 batch sizes x 3 bandwidths), 3 variants each: rank 0 gets points 0 2 4, rank 1 gets 1 3 5.
sweep=(sweep "$src/scenarios/sweep-demo-h200.yaml" --set workload.tokens_per_rank=1024,2048
       --set cluster.nvlink_bandwidth=185GB/s,370GB/s,450GB/s --jobs 1)
fail() { echo "FAIL: $*"; exit 1; }

start=$(date +%s%N)
"$moesim" "${sweep[@]}" --csv one.csv --json one.json --html one.html --quiet || fail "one-process sweep: exit $?"
one_ms=$(( ($(date +%s%N) - start) / 1000000 ))
start=$(date +%s%N)
"${mpirun[@]}" "$moesim" "${sweep[@]}" --csv two.csv --json two.json --html two.html > two.out 2>&1 ||
  { cat two.out; fail "mpirun -np 2 sweep: exit $?"; }
two_ms=$(( ($(date +%s%N) - start) / 1000000 ))
cat two.out
echo "one process: ${one_ms} ms; mpirun -np 2: ${two_ms} ms"
[ "$(wc -l < one.csv)" -eq 19 ] || fail "one.csv: expected 19 lines (header + 6 points x 3 variants), got $(wc -l < one.csv)"
for f in csv json html; do cmp "one.$f" "two.$f" || fail "two.$f differs from one.$f"; done
grep -q "^rank 1/2: point 1 " two.out || fail "rank 1 did not run point 1"
grep -q "^rank 0/2: point 0 " two.out || fail "rank 0 did not run point 0"
! grep -q "^rank 0/2: point 1 " two.out || fail "rank 0 ran point 1 (rank 1's)"
ls two.csv.shard-* 2> /dev/null && fail "the ranks' shard CSVs were left after a finished sweep"

# Interrupted after one point per rank: both ranks exit 130, each shard CSV holds its one finished point.
# (orte_abort_on_non_zero_status 0: mpirun lets the other rank reach its own stop instead of killing it when the
# first one exits 130, so that each shard CSV holds exactly one point whatever the ranks' relative speed; mpirun
# then exits 0, so the ranks' own messages are checked.)
MOESIM_SWEEP_STOP_AFTER=1 "${mpirun[@]}" --mca orte_abort_on_non_zero_status 0 -x MOESIM_SWEEP_STOP_AFTER \
  "$moesim" "${sweep[@]}" --csv three.csv > three.out 2>&1
for r in 0 1; do
  grep -q "rank $r/2: interrupted: 1 of 3 points in three.csv.shard-$((r + 1))-of-2" three.out ||
    { cat three.out; fail "rank $r did not report its interruption"; }
done
[ -e three.csv ] && fail "an interrupted MPI sweep wrote three.csv"
for r in 1 2; do
  part=three.csv.shard-$r-of-2
  [ -f "$part" ] || { cat three.out; fail "$part missing after the interruption"; }
  [ "$(wc -l < "$part")" -eq 4 ] || fail "$part: expected header + 1 point x 3 variants, got $(wc -l < "$part") lines"
  [ "$(head -1 "$part")" = "$(head -1 one.csv)" ] || fail "$part: another header than one.csv's"
done
"${mpirun[@]}" "$moesim" "${sweep[@]}" --csv three.csv --resume > resume.out 2>&1 ||
  { cat resume.out; fail "mpirun sweep --resume: exit $?"; }
grep -q "resuming: 1 of 3 points" resume.out || { cat resume.out; fail "--resume did not keep the finished points"; }
cmp one.csv three.csv || fail "three.csv (interrupted, then --resume) differs from one.csv"
# --shard under an MPI launch would split twice: refused by every rank (exit 2), nothing written.
"${mpirun[@]}" "$moesim" "${sweep[@]}" --csv four.csv --shard 1/2 > four.out 2>&1 &&
  { cat four.out; fail "--shard under mpirun was accepted"; }
grep -q "shard and an MPI launch both split the points" four.out || { cat four.out; fail "no --shard refusal message"; }
ls four.csv* 2> /dev/null && fail "a refused sweep wrote files"
echo "PASS: mpirun -np 2 CSV, JSON and HTML equal the one-process files byte for byte; interrupt + --resume too"
