#!/usr/bin/env bash
# Optional third command for a lent GPU machine, after scripts/gpu_check.sh and bench/run_gpu.sh
# when device time is left (README "On a GPU machine"): the tensor-core convolutions' tile sweep
# (`bench_conv2d --sweep`: every tile and dw split per shape of the CIFAR-10 preset, validated, then
# timed against what the rules run) and, with NCU=1 and ncu present, Nsight Compute profiles of
# the tensor-core kernels of the 3x3 64->64 conv at 32x32 (8 uses a step, dw at 4.5x cuDNN's time
# on 2026-11-28), then of the linear attention and GroupNorm kernels: where the time goes. Reuses
# the carried binaries like the other two.
# Knobs: SWEEP_BUDGET (seconds, default 150, the profiles included), SWEEP_PRECISIONS ("bf16 tf32"), NCU (0),
# NCU_ONLY (the shape key, default "32x32 64->64 k3 p1"). Output: the tables on stdout and, with
# $OUT set, sweep_<precision>.md, sweep.log and ncu_<name>.txt there.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
SWEEP_BUDGET=${SWEEP_BUDGET:-150}
SWEEP_PRECISIONS=${SWEEP_PRECISIONS:-bf16 tf32}
NCU=${NCU:-0}
NCU_ONLY=${NCU_ONLY:-32x32 64->64 k3 p1}
t_start=$SECONDS
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >/dev/null 2>&1 || {
  echo "run_gpu_sweep.sh: no NVIDIA GPU found" >&2
  exit 2
}
# shellcheck source=scripts/gpu_common.sh
source scripts/gpu_common.sh
tmp=$(mktemp -d)
GPU_BUILD_LOG=$tmp/build.log
if [ -x "$BUILD_DIR/bench/bench_conv2d" ] && ! gpu_prebuilt_ok; then
  GPU_BENCH_DIR=$BUILD_DIR/bench
else
  gpu_binaries dd_bench || { echo "run_gpu_sweep.sh: build failed" >&2; tail -n 40 "$GPU_BUILD_LOG"; exit 1; }
fi
B=$GPU_BENCH_DIR
status=0
left() { echo $((SWEEP_BUDGET - (SECONDS - t_start))); }
# With NCU=1 the sweeps leave 60 s of the budget to the three profiles; each is cut at 40 s so that
# one slow profile cannot take the others' time (never timed: ncu's start, the bench's CPU
# validation and a few profiled launches are expected to take 10-20 s).
reserve=0
[ "$NCU" = 1 ] && reserve=60
for p in $SWEEP_PRECISIONS; do
  l=$(($(left) - reserve))
  if [ "$l" -lt 20 ]; then
    echo "_not run (out of time, SWEEP_BUDGET=${SWEEP_BUDGET} s): the ${p} sweep_" | tee -a "$tmp/sweep_${p}.md"
    continue
  fi
  timeout -k 5 "$l" "$B/bench_conv2d" --sweep --precision "$p" --repeats 10 >"$tmp/sweep_${p}.md" 2>>"$tmp/sweep.log"
  rc=$?
  [ $rc != 0 ] && { status=1; echo "run_gpu_sweep.sh: the ${p} sweep exited ${rc} (124: cut at the budget)" >&2; }
done
# One Nsight Compute profile: ncu_<name>.txt, the speed of light, memory and warp-state sections
# (the limiter) of the first `count` launches matching `regex` in one bench command.
ncu_profile() {
  local name=$1 regex=$2 count=$3
  shift 3
  if ! command -v ncu >/dev/null 2>&1 || [ "$(left)" -le 30 ]; then
    echo "run_gpu_sweep.sh: ncu not found or out of time; no ${name} profile" | tee "$tmp/ncu_${name}.txt" >&2
    return
  fi
  local limit
  limit=$(left)
  [ "$limit" -gt 40 ] && limit=40
  timeout -k 5 "$limit" ncu --clock-control none --kernel-name "regex:${regex}" --launch-count "$count" \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
    --section LaunchStats "$@" >"$tmp/ncu_${name}.txt" 2>&1 || status=1
}
if [ "$NCU" = 1 ]; then
  # The tensor-core kernels of the shape: forward, dx, dw (the warm-up's).
  ncu_profile conv_tc conv_tc 3 "$B/bench_conv2d" --precision bf16 --only "$NCU_ONLY" --warmup 1 --repeats 1
  # The two memory-bound ops the 2026-11-28 run measured far from the copy bandwidth, at their
  # largest preset shape (batch 128): the linear attention at 32x32 (4-19% of copy; its head and
  # rows kernels, forward then backward: which of the two holds the time) and the fused
  # GroupNorm->SiLU op (10-35%; the backward the slowest): its apply and dx kernels (gna_*, with and
  # without the time scale/shift; its statistics passes are channel_partial, shared with the plain
  # GroupNorm that runs first, and not profiled here).
  ncu_profile linear_attention linear_attention 8 "$B/bench_attention" --quick --batch 128 --warmup 0 --repeats 1
  ncu_profile group_norm gna_ 8 "$B/bench_group_norm" --quick --batch 128 --warmup 0 --repeats 1
fi
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$tmp"/sweep_*.md "$tmp"/sweep.log "$tmp"/ncu_*.txt "$OUT"/ 2>/dev/null; fi
for p in $SWEEP_PRECISIONS; do cat "$tmp/sweep_${p}.md" 2>/dev/null; done
for f in "$tmp"/ncu_*.txt; do [ -f "$f" ] && { echo "== $(basename "$f")"; tail -n 60 "$f"; }; done
echo "run_gpu_sweep.sh: $((SECONDS - t_start)) s, status ${status}" >&2
exit $status
