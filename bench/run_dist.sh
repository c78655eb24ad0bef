#!/usr/bin/env bash
# Data-parallel scaling on the CPU (issue 16): the Fashion-MNIST preset's training step (dim 32,
# dim_mults 1,2,4) in one process and in 2 ranks, under mpirun and under torchrun-style variables
# (TCP), with the gradient all-reduce's time per step as train_ddpm reports it. Writes
# bench/RESULTS.md's "dist" section (NO_SPLICE=1: print it instead).
# Rows, each ROUNDS times, alternating so drift hits all alike:
#   one process, all cores, global batch B        (the baseline: what W ranks must beat)
#   one process, 1 thread, batch B/2              (one rank's share: the ideal for the 2-rank rows)
#   mpirun -np 2, 1 thread each, global batch B   (strong scaling against the first row)
#   2 TCP ranks, 1 thread each, global batch B
# Environment: BUILD_DIR (default build; needs train_ddpm, built with MPI for the mpirun rows),
# DATA (default /usr/share/datasets/fashion-mnist), BATCH (global, default 64), STEPS (default 12),
# ROUNDS (default 2). --timesteps 100 only shortens the final sample grid: the step's cost does not
# depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
BATCH=${BATCH:-64}
STEPS=${STEPS:-12}
ROUNDS=${ROUNDS:-2}
TRAIN=$BUILD_DIR/train_ddpm
[ -x "$TRAIN" ] || { echo "run_dist: no $TRAIN (cmake --build $BUILD_DIR --target train_ddpm)" >&2; exit 1; }
[ -d "$DATA" ] || { echo "run_dist: no Fashion-MNIST at $DATA (DATA=...)" >&2; exit 1; }
[ $((BATCH % 2)) = 0 ] || { echo "run_dist: BATCH=$BATCH does not split over 2 ranks" >&2; exit 1; }
CORES=$(nproc)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--data "$DATA" --dim 32 --dim-mults 1,2,4 --timesteps 100 --steps "$STEPS" --log-every "$STEPS"
        --sample-every 0 --save-every 0 --n-samples 1 --device cpu --seed 11)
MPI=(mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1)
have_mpi=1
command -v mpirun >/dev/null || have_mpi=0

# ROW LABEL -- COMMAND...: runs it, appends "label|img/s|allreduce ms|step ms" to $tmp/rows.
row() {
  local label=$1; shift 2
  local out=$tmp/run$RANDOM
  echo "== $label: $*" >&2
  if ! "$@" --out "$out" >"$out.log" 2>&1; then
    cat "$out.log" >&2; echo "run_dist: FAILED: $label" >&2; exit 1
  fi
  local ips ar sm
  ips=$(sed -n 's/^done: step [0-9]*, \([0-9.]*\) img\/s.*/\1/p' "$out.log" | tail -n 1)
  ar=$(sed -n 's/.*all-reduce of [0-9]* floats \([0-9.]*\) ms a step.*/\1/p' "$out.log" | tail -n 1)
  sm=$(sed -n 's/.* of \([0-9.]*\) ms a step$/\1/p' "$out.log" | tail -n 1)
  [ -n "$ips" ] || { cat "$out.log" >&2; echo "run_dist: no img/s in the log of $label" >&2; exit 1; }
  grep -o "all-reduce of [0-9]* floats" "$out.log" | head -n 1 | tr -dc '0-9' >"$tmp/floats" || true
  echo "$label|$ips|${ar:--}|${sm:--}" >>"$tmp/rows"
  rm -rf "$out" "$out.log"
}

half=$((BATCH / 2))
for round in $(seq "$ROUNDS"); do
  row "one process, $CORES threads, batch $BATCH" -- env OMP_NUM_THREADS="$CORES" "$TRAIN" "${common[@]}" \
    --threads "$CORES" --batch-size "$BATCH"
  row "one process, 1 thread, batch $half (one rank's share)" -- env OMP_NUM_THREADS=1 "$TRAIN" "${common[@]}" \
    --threads 1 --batch-size "$half"
  if [ "$have_mpi" = 1 ]; then
    row "mpirun -np 2, 1 thread each, global batch $BATCH" -- "${MPI[@]}" -np 2 "$TRAIN" "${common[@]}" \
      --threads 1 --batch-size "$BATCH"
  fi
  port=$((29500 + RANDOM % 1000))
  row "2 TCP ranks (torchrun-style), 1 thread each, global batch $BATCH" -- bash -c '
    for r in 0 1; do
      DD_DIST_TIMEOUT=300 RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT='"$port"' OMP_NUM_THREADS=1 "$@" &
    done; wait -n && wait -n' _ "$TRAIN" "${common[@]}" --threads 1 --batch-size "$BATCH"
done

floats=$(cat "$tmp/floats" 2>/dev/null || echo 0)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)
{
  echo "## CPU data parallel (issue 16)"
  echo
  echo "- device: $cpu, $CORES cores"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $commit"
  echo "- command: \`bench/run_dist.sh\` (BATCH=$BATCH STEPS=$STEPS ROUNDS=$ROUNDS; load average before: $load_before)"
  echo
  echo "Fashion-MNIST preset (dim 32, dim_mults 1,2,4, 28x28), $STEPS steps per row, img/s over the whole run"
  echo "(the first step's allocations included). The all-reduce column is rank 0's host time in the"
  echo "gradient all-reduce ($floats floats, $((floats * 4 / 1000000)) MB), the wait for the slower rank"
  echo "included. Each row $ROUNDS times, in alternation; the range is over the rounds."
  echo
  echo "| launch | img/s | ms / step | all-reduce ms / step | % of the step | vs one process, all cores |"
  echo "| --- | --- | --- | --- | --- | --- |"
  python3 - "$tmp/rows" "$BATCH" <<'EOF'
import sys
rows, batch = {}, int(sys.argv[2])
for line in open(sys.argv[1]):
    label, ips, ar, sm = line.rstrip("\n").split("|")
    rows.setdefault(label, []).append((float(ips), None if ar == "-" else float(ar), None if sm == "-" else float(sm)))
base = None
for label, runs in rows.items():
    ips = [r[0] for r in runs]
    per = batch // 2 if "one rank's share" in label else batch
    ms = [1e3 * per / x for x in ips]
    rng = lambda v, f: f % min(v) if len(v) == 1 or f % min(v) == f % max(v) else (f + "–" + f) % (min(v), max(v))
    if base is None:
        base = ips
    ar = [r[1] for r in runs if r[1] is not None]
    pct = [100 * r[1] / r[2] for r in runs if r[1] is not None and r[2]]
    speed = "1" if ips is base else ("%.2f–%.2f" % (min(ips) / max(base), max(ips) / min(base)))
    if "one rank's share" in label:
        speed = "(per image: %.2f–%.2f)" % (min(ips) / max(base), max(ips) / min(base))
    print("| %s | %s | %s | %s | %s | %s |" % (label, rng(ips, "%.1f"), rng(ms, "%.0f"),
          rng(ar, "%.2f") if ar else "-", rng(pct, "%.1f") if pct else "-", speed))
EOF
} >"$tmp/dist.md"
if [ -n "${NO_SPLICE:-}" ]; then cat "$tmp/dist.md"; else python3 bench/splice_results.py dist "$tmp/dist.md"; fi
