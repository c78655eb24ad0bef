#!/usr/bin/env bash
# Optional third command for a lent GPU machine, after scripts/gpu_check.sh and bench/run_gpu.sh
# when device time is left (README "On a GPU machine"): the tensor-core convolutions' tile sweep
# (`bench_conv2d --sweep`: every tile and dw split per shape of the CIFAR-10 preset, validated, then
# timed against what the rules run) and, with NCU=1 and ncu present, an Nsight Compute profile of
# the tensor-core kernels of the 3x3 64->64 conv at 32x32 (8 uses a step, dw at 4.5x cuDNN's time
# on 2026-11-28): where the time goes. Reuses the carried binaries like the other two.
# Knobs: SWEEP_BUDGET (seconds, default 150), SWEEP_PRECISIONS ("bf16 tf32"), NCU (0),
# NCU_ONLY (the shape key, default "32x32 64->64 k3 p1"). Output: the tables on stdout and, with
# $OUT set, sweep_<precision>.md, sweep.log and ncu_conv_tc.txt there.
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
for p in $SWEEP_PRECISIONS; do
  l=$(left)
  if [ "$l" -lt 20 ]; then
    echo "_not run (out of time, SWEEP_BUDGET=${SWEEP_BUDGET} s): the ${p} sweep_" | tee -a "$tmp/sweep_${p}.md"
    continue
  fi
  timeout -k 5 "$l" "$B/bench_conv2d" --sweep --precision "$p" --repeats 10 >"$tmp/sweep_${p}.md" 2>>"$tmp/sweep.log"
  rc=$?
  [ $rc != 0 ] && { status=1; echo "run_gpu_sweep.sh: the ${p} sweep exited ${rc} (124: cut at the budget)" >&2; }
done
if [ "$NCU" = 1 ]; then
  if command -v ncu >/dev/null 2>&1 && [ "$(left)" -gt 30 ]; then
    # One launch of each tensor-core kernel of the shape (forward, dx, dw; the warm-up's): the
    # speed of light, memory and warp-state sections name the limiter.
    timeout -k 5 "$(left)" ncu --kernel-name regex:conv_tc --launch-count 3 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
      --section LaunchStats "$B/bench_conv2d" --precision bf16 --only "$NCU_ONLY" --warmup 1 --repeats 1 \
      >"$tmp/ncu_conv_tc.txt" 2>&1 || status=1
  else
    echo "run_gpu_sweep.sh: ncu not found or out of time; no profile" | tee "$tmp/ncu_conv_tc.txt" >&2
  fi
fi
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$tmp"/sweep_*.md "$tmp"/sweep.log "$OUT"/ 2>/dev/null; cp "$tmp"/ncu_conv_tc.txt "$OUT"/ 2>/dev/null; fi
for p in $SWEEP_PRECISIONS; do cat "$tmp/sweep_${p}.md" 2>/dev/null; done
[ -f "$tmp/ncu_conv_tc.txt" ] && tail -n 120 "$tmp/ncu_conv_tc.txt"
echo "run_gpu_sweep.sh: $((SECONDS - t_start)) s, status ${status}" >&2
exit $status
