#!/usr/bin/env bash
# Signals in every phase (apps/ddpm/interrupt.h), sent as a user or a cluster sends them:
#   SIGINT / SIGTERM during sample_ddpm: exit 130 / 143, "nothing written", no PNG;
#   a second SIGINT: exit 130 at once;
#   SIGTERM during train_ddpm's final grid: exit 143, the checkpoint complete and loadable, no grid;
#   SIGUSR1 during training: a checkpoint and the run goes on; then SIGINT: exit 130 with the resume line.
# Usage: signals.sh BUILD_DIR DATA_DIR SOURCE_DIR
set -euo pipefail
B=$1
DATA=$2
SRC=$3
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
if [ ! -d "$DATA" ]; then
  echo "signals: no Fashion-MNIST images ($2 or .gpu-deps/fashion-mnist): skipped"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "signals: FAIL: $*" >&2; exit 1; }
# Waits up to 60 s for a pattern in a log (progress lines end in \r: searched as text).
wait_for() {
  for _ in $(seq 600); do
    [ -f "$1" ] && tr '\r' '\n' <"$1" | grep -q -- "$2" && return 0
    sleep 0.1
  done
  cat "$1"
  fail "timed out waiting for '$2' in $1"
}
common=(--data "$DATA" --image-size 16 --dim 8 --dim-mults 1,2 --timesteps 1000 --batch-size 4 --log-every 1
        --save-every 0 --n-samples 4 --device cpu --threads 1)
"$B/train_ddpm" --out "$T/base" --steps 1 --sample-every 0 --sample-steps 2 "${common[@]}" >"$T/base.log" 2>&1 ||
  { cat "$T/base.log"; fail "training the model to sample"; }
W=$T/base/model.safetensors

for sig in INT TERM; do
  "$B/sample_ddpm" --weights "$W" --n 4 --out "$T/s_$sig.png" --device cpu >"$T/s_$sig.log" 2>&1 &
  pid=$!
  wait_for "$T/s_$sig.log" "sample 1/"
  kill -s "$sig" $pid
  rc=0
  wait $pid || rc=$?
  want=$([ $sig = INT ] && echo 130 || echo 143)
  [ $rc -eq "$want" ] || { cat "$T/s_$sig.log"; fail "sample_ddpm after SIG$sig exited $rc, not $want"; }
  grep -q "stopped by SIG$sig.*nothing written" "$T/s_$sig.log" || { cat "$T/s_$sig.log"; fail "SIG$sig: no message"; }
  [ ! -e "$T/s_$sig.png" ] || fail "SIG$sig: a partial grid was written"
done

"$B/sample_ddpm" --weights "$W" --n 4 --out "$T/s2.png" --device cpu >"$T/s2.log" 2>&1 &
pid=$!
wait_for "$T/s2.log" "sample 1/"
kill -INT $pid
kill -INT $pid
rc=0
wait $pid || rc=$?
[ $rc -eq 130 ] || { cat "$T/s2.log"; fail "two SIGINTs: exit $rc, not 130"; }
[ ! -e "$T/s2.png" ] || fail "two SIGINTs: a grid was written"

# The final grid of a finished run (1000 DDPM steps: long enough to be hit).
"$B/train_ddpm" --out "$T/grid" --steps 2 --sample-every 0 --sample-sampler ddpm "${common[@]}" >"$T/grid.log" 2>&1 &
pid=$!
wait_for "$T/grid.log" "sample 1/"
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc -eq 143 ] || { cat "$T/grid.log"; fail "train_ddpm SIGTERM in the final grid: exit $rc, not 143"; }
grep -q "stopped by SIGTERM during the final sample grid" "$T/grid.log" || { cat "$T/grid.log"; fail "final grid: no message"; }
[ -z "$(ls "$T/grid/samples")" ] || fail "a partial final grid was written: $(ls "$T/grid/samples")"
"$B/sample_ddpm" --weights "$T/grid/model.safetensors" --n 1 --sampler ddim --steps 2 --out "$T/g.png" --device cpu \
  >/dev/null 2>&1 || fail "the weights saved before the interrupted grid do not load"

# SIGUSR1: a checkpoint, training goes on; then SIGINT stops it with the resume line.
"$B/train_ddpm" --out "$T/usr1" --steps 100000 --sample-every 0 --sample-steps 2 "${common[@]}" >"$T/usr1.log" 2>&1 &
pid=$!
wait_for "$T/usr1/metrics.csv" "^5,"
kill -USR1 $pid
wait_for "$T/usr1.log" "checkpoint written at step"
[ -s "$T/usr1/checkpoint.safetensors" ] || fail "SIGUSR1 wrote no checkpoint"
kill -0 $pid || fail "SIGUSR1 stopped the run"
kill -INT $pid
rc=0
wait $pid || rc=$?
[ $rc -eq 130 ] || { cat "$T/usr1.log"; fail "train_ddpm SIGINT: exit $rc, not 130"; }
grep -q "stopped by SIGINT at step .*train_ddpm --out .* --resume" "$T/usr1.log" || { cat "$T/usr1.log"; fail "no resume line"; }
echo "signals: ok"
