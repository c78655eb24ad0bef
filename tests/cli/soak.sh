#!/usr/bin/env bash
# Soak: a tiny CPU training run killed with SIGKILL at random moments (during steps, checkpoint
# writes, start-up), restarted each time as a cluster job would be (--resume when a checkpoint
# exists), must end with the checkpoint of an uninterrupted run of the same length, bit for bit:
# resume is bitwise on the CPU and a checkpoint is written durably (engine/durable_file.h), so no
# kill may lose or corrupt what was saved.
# Usage: soak.sh BUILD_DIR DATA_DIR SOURCE_DIR [KILLS] (default 3; the closing note's long run: 20)
set -euo pipefail
B=$1
DATA=$2
SRC=$3
KILLS=${4:-3}
PY=${DD_TORCH_PYTHON:-/usr/bin/python3}
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
if [ ! -d "$DATA" ]; then
  echo "soak: no Fashion-MNIST images ($2 or .gpu-deps/fashion-mnist): skipped"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "soak: FAIL: $*" >&2; exit 1; }
STEPS=40
flags=(--data "$DATA" --image-size 16 --dim 8 --dim-mults 1,2 --timesteps 20 --batch-size 4 --log-every 1
       --sample-every 0 --save-every 1 --n-samples 1 --sample-steps 1 --steps $STEPS --seed 3 --device cpu
       --threads 1)

"$B/train_ddpm" --out "$T/straight" "${flags[@]}" >"$T/straight.log" 2>&1 || { cat "$T/straight.log"; fail "straight run"; }

kills=0
runs=0
RANDOM=$$
while :; do
  resume=()
  [ -f "$T/soaked/checkpoint.safetensors" ] && resume=(--resume)
  "$B/train_ddpm" --out "$T/soaked" "${flags[@]}" "${resume[@]}" >"$T/run_$runs.log" 2>&1 &
  pid=$!
  runs=$((runs + 1))
  if [ $kills -lt "$KILLS" ]; then
    # 50 ms to 1.5 s: start-up, steps, and the per-step checkpoint writes all get hit.
    sleep "$(printf '0.%03d' $((50 + RANDOM % 950)))"
    [ $((RANDOM % 3)) -eq 0 ] && sleep 0.5
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      kills=$((kills + 1))
      continue
    fi
  fi
  wait "$pid" || { cat "$T/run_$((runs - 1)).log"; fail "run $runs failed after $kills kills"; }
  grep -q "done: step $STEPS" "$T/run_$((runs - 1)).log" && break
done
ls "$T/soaked" | grep -q '\.tmp-' && fail "a temporary file was left in the run folder: $(ls "$T/soaked")"

. "$SRC/tests/cli/run_compare.sh"
same "$T/straight" "$T/soaked" || fail "the soaked run differs from the straight one"
echo "soak: ok: $kills SIGKILLs over $runs runs; the final checkpoint and weights equal the uninterrupted run's bit for bit"
