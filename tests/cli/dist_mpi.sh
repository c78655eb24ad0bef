#!/usr/bin/env bash
# Data-parallel CPU training under Open MPI (issue 16): train_ddpm --device cpu launched by
# mpirun --oversubscribe on this machine.
#   1. mpirun -np 1 and a torchrun-style world size 1 are the single process bit for bit.
#   2. -np 2 with global batch 4: every rank runs in its own working folder with a relative --out,
#      so a file written by rank 1 would land in rank 1's folder: it must stay empty.
#   3. -np 2 with global batch 4 equals one process with --batch-size 2 --grad-accum 2 bit for bit:
#      rank r trains on micro-batch r's images with micro-batch r's random numbers
#      (apps/dist/shard.h), and sum-then-halve of two gradients equals the accumulated halves exactly
#      (scaling by 1/2 is exact in fp32, and the backward is linear in its seed).
#   4. -np 2 stopped at step 3 and resumed to 5 equals -np 2 for 5 straight, bit for bit (shards,
#      per-rank draws, the averaged gradients and the broadcast all survive a resume).
#   5. A global batch that 2 ranks cannot split is refused naming --batch-size and the world size.
#      And a 2-rank checkpoint resumes in one process (global data position and Philox offset).
#   6. A rank that fails ends the job (MPI_Abort) instead of leaving the others in a collective.
#   7. SIGINT to mpirun stops every rank after the same step with a checkpoint, and the run resumes.
# Usage: dist_mpi.sh BUILD_DIR DATA_DIR SOURCE_DIR
set -euo pipefail
B=$(cd "$1" && pwd)  # absolute: the ranks of test 2 change folder
DATA=$2
SRC=$3
PY=${DD_TORCH_PYTHON:-/usr/bin/python3}
command -v mpirun >/dev/null || { echo "dist_mpi: no mpirun (apt-get install openmpi-bin): skipped"; exit 77; }
# Under scripts/sanitize.sh: Open MPI's plugins (dlopen'ed, unloaded at MPI_Finalize, so their frames are
# "<unknown module>") leak at exit, and LeakSanitizer cannot tell those from ours. Leak checks are off in
# the MPI processes; every other ASan and UBSan check stays on (tests/test_dist.cpp covers our code with
# leak checks).
if [ -n "${ASAN_OPTIONS:-}" ]; then export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"; fi
[ -d "$DATA" ] || { echo "dist_mpi: no Fashion-MNIST images at $DATA: skipped"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "dist_mpi: FAIL: $*" >&2; exit 1; }
MPI=(mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)

common=(--data "$DATA" --image-size 8 --dim 8 --dim-mults 1,2 --timesteps 10 --batch-size 4 --log-every 1
        --sample-every 0 --save-every 0 --n-samples 4 --device cpu --threads 1 --seed 7)

. "$SRC/tests/cli/run_compare.sh"  # same, losses

# 1. One rank under mpirun is the plain single process.
"$B/train_ddpm" --out "$T/single" --steps 5 "${common[@]}" >"$T/single.log" 2>&1 || { cat "$T/single.log"; fail "single"; }
"${MPI[@]}" -np 1 "$B/train_ddpm" --out "$T/np1" --steps 5 "${common[@]}" >"$T/np1.log" 2>&1 || { cat "$T/np1.log"; fail "np 1"; }
same "$T/single" "$T/np1" || fail "mpirun -np 1 differs from one process"
[ "$(losses "$T/single")" = "$(losses "$T/np1")" ] || fail "mpirun -np 1 logged other losses"
# A torchrun-style launch of world size 1 is the single process too (several ranks: dist_tcp.sh).
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 "$B/train_ddpm" --out "$T/tr1" --steps 5 "${common[@]}" >"$T/tr1.log" 2>&1 ||
  { cat "$T/tr1.log"; fail "torchrun-style world size 1"; }
same "$T/single" "$T/tr1" || fail "a torchrun-style launch of world size 1 differs from one process"

# 2. Two ranks, each in its own folder; only rank 0's may receive files.
mkdir -p "$T/r0" "$T/r1"
"${MPI[@]}" -np 2 bash -c 'cd "$0/r$OMPI_COMM_WORLD_RANK" && exec "$@"' "$T" "$B/train_ddpm" --out run --steps 5 \
  "${common[@]}" >"$T/np2.log" 2>&1 || { cat "$T/np2.log"; fail "np 2"; }
grep -q "batch 4 (global; 2 ranks of 2)" "$T/np2.log" || { cat "$T/np2.log"; fail "np 2: the log does not show the split"; }
grep -q "data parallel: 2 ranks; gradient all-reduce of [0-9]* floats [0-9.]* ms a step" "$T/np2.log" ||
  { cat "$T/np2.log"; fail "np 2: no all-reduce time (bench/run_dist.sh reads it)"; }
for f in checkpoint.safetensors model.safetensors metrics.csv config.json samples/step_0000005.png; do
  [ -s "$T/r0/run/$f" ] || fail "rank 0 wrote no $f"
done
[ -z "$(ls -A "$T/r1")" ] || fail "rank 1 wrote files: $(find "$T/r1")"
[ "$(grep -c 'done: step 5' "$T/np2.log")" = 1 ] || fail "not exactly one rank logged"
[ "$(tail -n 1 "$T/r0/run/metrics.csv" | cut -d, -f1)" = 5 ] || fail "np 2 did not log step 5"

# 3. Two ranks equal one process accumulating the same two micro-batches.
accum=()
for a in "${common[@]}"; do [ "$a" = 4 ] && [ "${accum[-1]}" = --batch-size ] && a=2; accum+=("$a"); done
"$B/train_ddpm" --out "$T/accum" --steps 5 "${accum[@]}" --grad-accum 2 >"$T/accum.log" 2>&1 ||
  { cat "$T/accum.log"; fail "one process with --grad-accum 2"; }
same "$T/accum" "$T/r0/run" || fail "2 ranks with global batch 4 differ from one process with batch 2 x 2 accumulated"
[ "$(losses "$T/accum")" = "$(losses "$T/r0/run")" ] || fail "2 ranks logged other losses than batch 2 x 2 accumulated"

# 4. Two ranks resumed equal two ranks straight.
"${MPI[@]}" -np 2 "$B/train_ddpm" --out "$T/part" --steps 3 "${common[@]}" >"$T/part.log" 2>&1 || { cat "$T/part.log"; fail "np 2 part"; }
cp -r "$T/part" "$T/part3"
"${MPI[@]}" -np 2 "$B/train_ddpm" --out "$T/part" --resume --steps 5 --device cpu >"$T/resume.log" 2>&1 ||
  { cat "$T/resume.log"; fail "np 2 resume"; }
same "$T/r0/run" "$T/part" || fail "2 ranks resumed at step 3 differ from 2 ranks straight"
[ "$(losses "$T/r0/run")" = "$(losses "$T/part")" ] || fail "2 ranks resumed logged other losses"
# Another world size: the 2-rank checkpoint at step 3 continues in one process (the data position and
# the Philox offset are global), logging steps 4 and 5 after the 2-rank rows.
cp -r "$T/part3" "$T/other"
"$B/train_ddpm" --out "$T/other" --resume --steps 5 --device cpu >"$T/other.log" 2>&1 ||
  { cat "$T/other.log"; fail "one process resuming a 2-rank run"; }
[ "$(cut -d, -f1 "$T/other/metrics.csv" | tail -n 5 | tr '\n' ' ')" = "1 2 3 4 5 " ] ||
  fail "one process resuming a 2-rank run logged $(cut -d, -f1 "$T/other/metrics.csv" | tr '\n' ' ')"
[ "$(head -n 4 "$T/other/metrics.csv" | cut -d, -f1,2)" = "$(head -n 4 "$T/part/metrics.csv" | cut -d, -f1,2)" ] ||
  fail "resuming in one process changed the 2-rank rows"

# 5. A global batch 2 ranks cannot split.
odd=()
for a in "${common[@]}"; do [ "$a" = 4 ] && [ "${odd[-1]}" = --batch-size ] && a=3; odd+=("$a"); done
if "${MPI[@]}" -np 2 "$B/train_ddpm" --out "$T/odd" --steps 1 "${odd[@]}" >"$T/odd.log" 2>&1; then
  fail "--batch-size 3 over 2 ranks was accepted"
fi
grep -q -- "--batch-size 3 is the global batch and must split evenly over 2 ranks" "$T/odd.log" ||
  { cat "$T/odd.log"; fail "--batch-size 3 over 2 ranks: unclear error"; }

# 6. A rank that fails ends the job instead of leaving the others in a collective: the data exists
#    only in rank 0's folder, so rank 1 fails to open it while rank 0 waits in the first broadcast.
mkdir -p "$T/f0" "$T/f1"
ln -s "$DATA" "$T/f0/data"
nodata=()
for a in "${common[@]}"; do [ "${#nodata[@]}" -gt 0 ] && [ "${nodata[-1]}" = --data ] && a=data; nodata+=("$a"); done
start=$SECONDS
if timeout 120 "${MPI[@]}" -np 2 bash -c 'cd "$0/f$OMPI_COMM_WORLD_RANK" && exec "$@"' "$T" "$B/train_ddpm" --out run \
    --steps 5 "${nodata[@]}" >"$T/fail.log" 2>&1; then
  fail "a run whose rank 1 cannot read its data succeeded"
fi
[ $((SECONDS - start)) -lt 120 ] || fail "a failing rank left the job hanging until the timeout"
grep -q "error (rank 1 of 2): train_ddpm: .*data" "$T/fail.log" || { cat "$T/fail.log"; fail "rank 1's failure was not reported"; }

# 7. SIGINT to mpirun (Open MPI forwards SIGTERM to every rank): the ranks agree to stop after the
#    same step, rank 0 saves the checkpoint, and the run resumes from it.
"${MPI[@]}" -np 2 "$B/train_ddpm" --out "$T/sig" --steps 100000 "${common[@]}" >"$T/sig.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  [ -s "$T/sig/metrics.csv" ] && [ "$(wc -l <"$T/sig/metrics.csv")" -ge 4 ] && break
  sleep 0.1
done
kill -INT $pid
sig_start=$SECONDS
# Polled, not a background sleep: a leftover sleep would hold ctest's output pipe open.
for _ in $(seq 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
  kill -9 $pid
  fail "the ranks did not stop within 60 s of SIGINT (a rank left waiting in a collective?)"
fi
wait $pid || true
grep -q "stopped by" "$T/sig.log" || { cat "$T/sig.log"; fail "SIGINT: rank 0 did not report the stop"; }
[ -s "$T/sig/checkpoint.safetensors" ] || fail "SIGINT: no checkpoint"
stopped=$(tail -n 1 "$T/sig/metrics.csv" | cut -d, -f1)
"${MPI[@]}" -np 2 "$B/train_ddpm" --out "$T/sig" --resume --steps $((stopped + 2)) --device cpu >"$T/sig2.log" 2>&1 ||
  { cat "$T/sig2.log"; fail "resume after SIGINT"; }
[ "$(tail -n 1 "$T/sig/metrics.csv" | cut -d, -f1)" = $((stopped + 2)) ] || fail "resume after SIGINT did not reach its step"
echo "dist_mpi: ok: SIGINT stopped both ranks at step $stopped within $((SECONDS - sig_start)) s and the run resumed"
echo "dist_mpi: ok: a failing rank ended the job in $((SECONDS - start)) s"
echo "dist_mpi: ok: -np 1 equals one process bitwise; -np 2 wrote only from rank 0, equals one process with batch 2 x 2 accumulated bitwise, and its resume is bitwise"
