#!/usr/bin/env bash
# --device cuda with 2 ranks (torchrun-style, over the TCP group) where the GPU path cannot run: a
# build without NCCL, or a machine without a GPU. Both ranks must fail at once, non-zero, and rank
# 0's error must name what is missing (NCCL, or the GPU), never train or hang.
# Usage: dist_nccl_refusal.sh BUILD_DIR DATA_DIR SOURCE_DIR WITH_NCCL(TRUE/FALSE)
set -euo pipefail
B=$(cd "$1" && pwd)
DATA=$2
SRC=$3
WITH_NCCL=$4
PY=${DD_TORCH_PYTHON:-/usr/bin/python3}
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
[ -d "$DATA" ] || { echo "dist_nccl_refusal: no Fashion-MNIST images at $2: skipped"; exit 77; }
if [ "$WITH_NCCL" = TRUE ] && nvidia-smi -L >/dev/null 2>&1; then
  echo "dist_nccl_refusal: this build has NCCL and this machine a GPU: nothing to refuse (skipped)"
  exit 77
fi
T=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
fail() { echo "dist_nccl_refusal: FAIL: $*" >&2; exit 1; }
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start=$(date +%s)
for r in 1 0; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port DD_DIST_TIMEOUT=60 OMP_NUM_THREADS=1 \
    timeout 120 "$B/train_ddpm" --device cuda --data "$DATA" --image-size 8 --dim 8 --dim-mults 1,2 --timesteps 10 \
    --batch-size 4 --steps 2 --sample-every 0 --out "$T/run" >"$T/r$r.log" 2>&1 &
  pids+=($!)
done
rc1=0; rc0=0
wait "${pids[0]}" || rc1=$?
wait "${pids[1]}" || rc0=$?
elapsed=$(( $(date +%s) - start ))
[ "$rc0" -ne 0 ] && [ "$rc0" -ne 124 ] || { cat "$T/r0.log"; fail "rank 0 exited $rc0 (0: it trained; 124: it hung)"; }
[ "$rc1" -ne 0 ] && [ "$rc1" -ne 124 ] || { cat "$T/r1.log"; fail "rank 1 exited $rc1 (0: it trained; 124: it hung)"; }
if [ "$WITH_NCCL" = TRUE ]; then want='no CUDA device'; else want='needs NCCL'; fi
grep -q "$want" "$T/r0.log" || { cat "$T/r0.log"; fail "rank 0's error does not say '$want'"; }
[ "$elapsed" -lt 60 ] || fail "the ranks took $elapsed s to fail (at once expected)"
[ ! -e "$T/run/checkpoint.safetensors" ] || fail "a checkpoint was written"
echo "dist_nccl_refusal: both ranks refused in ${elapsed} s: $(grep -m1 -o "error.*" "$T/r0.log" | cut -c1-200)"
