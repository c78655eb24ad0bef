#!/usr/bin/env bash
# Data-parallel CPU training launched torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), the
# ranks meeting over TCP (apps/dist/tcp_group.h), no MPI involved:
#   1. 2 ranks with global batch 4 equal one process with --batch-size 2 --grad-accum 2 bit for bit
#      (the same argument as dist_mpi.sh's: rank r trains micro-batch r, sum-then-halve is exact), and
#      rank 1 writes nothing (each rank runs in its own folder with a relative --out);
#   2. 2 ranks stopped at step 3 and resumed (torchrun-style again) equal 2 ranks for 5 straight;
#   3. a rank 1 whose rank 0 never comes fails within DD_DIST_TIMEOUT naming MASTER_ADDR:MASTER_PORT;
#   4. a rank killed mid-run (SIGKILL) ends the other with an error, not a hang;
#   5. SIGINT to both ranks stops them after the same step with rank 0's checkpoint.
# Usage: dist_tcp.sh BUILD_DIR DATA_DIR SOURCE_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
DATA=$2
SRC=$3
PY=${DD_TORCH_PYTHON:-/usr/bin/python3}
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
[ -d "$DATA" ] || { echo "dist_tcp: no Fashion-MNIST images at $2: skipped"; exit 77; }
T=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
fail() { echo "dist_tcp: FAIL: $*" >&2; exit 1; }
. "$SRC/tests/cli/run_compare.sh"  # same, losses
common=(--data "$DATA" --image-size 8 --dim 8 --dim-mults 1,2 --timesteps 10 --batch-size 4 --log-every 1
        --sample-every 0 --save-every 0 --n-samples 4 --device cpu --threads 1 --seed 7)
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# rank R of 2 at PORT: tcp_rank R PORT OUT LOG [train_ddpm flags...]
# train_ddpm's own pid goes to LOG.pid, for the signals below (a background function is a subshell
# whose pid is not train_ddpm's).
tcp_rank() {
  local r=$1 port=$2 out=$3 log=$4 pid
  shift 4
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 \
    "$B/train_ddpm" --out "$out" "${common[@]}" "$@" >"$log" 2>&1 &
  pid=$!
  echo "$pid" >"$log.pid"
  wait "$pid"
}
# Waits (up to 30 s) until LOG's run has logged step 3; prints train_ddpm's pid.
started() {
  for _ in $(seq 300); do [ -s "$1.pid" ] && tr '\r' '\n' <"$1" 2>/dev/null | grep -q "step 3" && break; sleep 0.1; done
  cat "$1.pid"
}

# Both ranks with the same --out (a shared file system, as a cluster's): rank 1 reads a checkpoint
# to resume from it, only rank 0 writes. Fails when either rank fails.
two_ranks() {
  local out=$1 port
  shift
  port=$(free_port)
  tcp_rank 1 "$port" "$out" "$out.r1.log" "$@" &
  local p1=$!
  pids+=("$p1")
  tcp_rank 0 "$port" "$out" "$out.r0.log" "$@" || { cat "$out.r0.log" "$out.r1.log"; fail "rank 0 ($*)"; }
  wait "$p1" || { cat "$out.r1.log"; fail "rank 1 ($*)"; }
}

# 1. Two ranks equal one process accumulating the same two micro-batches.
accum=()
for a in "${common[@]}"; do [ "$a" = 4 ] && [ "${accum[-1]}" = --batch-size ] && a=2; accum+=("$a"); done
"$B/train_ddpm" --out "$T/accum" --steps 5 "${accum[@]}" --grad-accum 2 >"$T/accum.log" 2>&1 ||
  { cat "$T/accum.log"; fail "one process with --grad-accum 2"; }
# Each rank in its own working folder with a relative --out: a file rank 1 wrote would land in r1/.
mkdir -p "$T/r0" "$T/r1"
port=$(free_port)
(cd "$T/r1" && tcp_rank 1 "$port" run "$T/tcp.r1.log" --steps 5) &
p1=$!
pids+=("$p1")
(cd "$T/r0" && tcp_rank 0 "$port" run "$T/tcp.r0.log" --steps 5) || { cat "$T/tcp.r0.log" "$T/tcp.r1.log"; fail "2 ranks"; }
wait "$p1" || { cat "$T/tcp.r1.log"; fail "rank 1"; }
[ -z "$(ls -A "$T/r1")" ] || fail "rank 1 wrote files: $(ls -A "$T/r1")"
mv "$T/r0/run" "$T/tcp"
grep -q "batch 4 (global; 2 ranks of 2)" "$T/tcp.r0.log" || { cat "$T/tcp.r0.log"; fail "the log does not show the split"; }
same "$T/accum" "$T/tcp" || fail "2 TCP ranks with global batch 4 differ from one process with batch 2 x 2 accumulated"
[ "$(losses "$T/accum")" = "$(losses "$T/tcp")" ] || fail "2 TCP ranks logged other losses than batch 2 x 2 accumulated"

# 2. Stopped at step 3 and resumed equals straight.
two_ranks "$T/part" --steps 3
two_ranks "$T/part" --steps 5 --resume
same "$T/tcp" "$T/part" || fail "2 TCP ranks resumed at step 3 differ from 2 ranks straight"

# 3. Rank 0 never comes: rank 1 gives up in time, naming where it looked, and writes nothing.
port=$(free_port)
t0=$SECONDS
if DD_DIST_TIMEOUT=2 tcp_rank 1 "$port" "$T/alone" "$T/alone.log" --steps 1; then fail "rank 1 trained without rank 0"; fi
[ $((SECONDS - t0)) -lt 30 ] || fail "rank 1 took $((SECONDS - t0)) s to give up (DD_DIST_TIMEOUT=2)"
grep -q "cannot reach rank 0 at 127.0.0.1:$port" "$T/alone.log" || { cat "$T/alone.log"; fail "unclear error without rank 0"; }
[ ! -e "$T/alone" ] || fail "a rank without its group wrote $T/alone"

# 4. Rank 1 killed mid-run: rank 0 fails at its next collective instead of waiting.
port=$(free_port)
tcp_rank 1 "$port" "$T/k" "$T/k1.log" --steps 100000 &
pids+=($!)
tcp_rank 0 "$port" "$T/k" "$T/k0.log" --steps 100000 &
w0=$!
pids+=("$w0")
pid1=$(started "$T/k1.log")
started "$T/k0.log" >/dev/null
pids+=("$pid1" "$(cat "$T/k0.log.pid")")
kill -9 "$pid1"
t0=$SECONDS
if wait "$w0"; then fail "rank 0 finished although rank 1 was killed"; fi
[ $((SECONDS - t0)) -lt 30 ] || fail "rank 0 took $((SECONDS - t0)) s to notice"
grep -q "rank 1.*closed the connection\|rank 1.*is gone" "$T/k0.log" || { tail -5 "$T/k0.log"; fail "rank 0's error does not name rank 1"; }

# 5. SIGINT to both ranks (as a terminal's Ctrl-C or a scheduler reaches every process): they agree
# to stop after the same step, rank 0 saves, and the run resumes.
port=$(free_port)
tcp_rank 1 "$port" "$T/s" "$T/s1.log" --steps 100000 &
w1=$!
tcp_rank 0 "$port" "$T/s" "$T/s0.log" --steps 100000 &
w0=$!
pids+=("$w0" "$w1")
pid0=$(started "$T/s0.log")
pid1=$(started "$T/s1.log")
pids+=("$pid0" "$pid1")
kill -INT "$pid0" "$pid1"
rc0=0; wait "$w0" || rc0=$?
rc1=0; wait "$w1" || rc1=$?
[ "$rc0" = 130 ] && [ "$rc1" = 130 ] || { tail -3 "$T/s0.log" "$T/s1.log"; fail "SIGINT: exit codes $rc0 / $rc1, not 130"; }
[ -f "$T/s/checkpoint.safetensors" ] || fail "SIGINT: rank 0 saved no checkpoint"
two_ranks "$T/s" --steps "$(($(tail -n 1 "$T/s/metrics.csv" | cut -d, -f1) + 1))" --resume
echo "dist_tcp: ok"
