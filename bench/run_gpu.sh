#!/usr/bin/env bash
# The bench for a machine with an NVIDIA GPU, sized for what a 15-minute lease leaves after
# scripts/gpu_check.sh (about 5 minutes; see README "On a GPU machine"). It reuses the check's
# binaries (the carried .gpu-deps/bin.tgz, or build-gpu/) and builds only the bench targets if neither
# is there. In order of what matters most, each run bounded by what is left of BENCH_BUDGET:
#   1. our CIFAR-10-preset training step (batch 128), also with --conv-autotune in bf16 and tf32
#      (its choices: conv_autotune.tsv), and the PyTorch peer (bench/torch_peer.py, the same step) in
#      the modes: defaults (as a user gets it: cuDNN TF32), strict fp32 (like-for-like with ours),
#      bf16 autocast;
#   2. sampling, 256 images x SAMPLE_TIMESTEPS (100) DDPM steps, ours and PyTorch in the same three
#      modes, scaled to 1000 steps in the table;
#   3. PyTorch with torch.compile and bf16 autocast (its best mode), compiling on the CPU meanwhile
#   4. every kernel bench against its yardstick (cuDNN, cuBLAS, the measured copy bandwidth), then
#      the compiled peer's timed steps, alone on the GPU.
# Writes bench/RESULTS.md's GPU section, copies the logs and tables to $OUT when set, prints the
# tables last. Knobs: BENCH_BUDGET (seconds, default 380), STEPS (timed training steps, 20),
# SAMPLE_TIMESTEPS (100), PYTHON (python3), SKIP_COMPILE=1, MAX_AUTOTUNE=1 (also torch.compile mode="max-autotune").
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
SAMPLE_TIMESTEPS=${SAMPLE_TIMESTEPS:-100}
STEPS=${STEPS:-20}
BENCH_BUDGET=${BENCH_BUDGET:-380}
t_start=$SECONDS
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >/dev/null 2>&1 || {
  echo "run_gpu.sh: no NVIDIA GPU found; bench/run_cpu.sh is the CPU command" >&2
  exit 2
}
# shellcheck source=scripts/gpu_common.sh
source scripts/gpu_common.sh
tmp=$(mktemp -d)
GPU_BUILD_LOG=$tmp/build.log
if [ -x "$BUILD_DIR/bench/bench_train_step" ] && ! gpu_prebuilt_ok; then
  # The check built here already: reuse it as is (a reconfigure could rebuild).
  GPU_BIN_DIR=$BUILD_DIR GPU_BENCH_DIR=$BUILD_DIR/bench GPU_BIN_ORIGIN="the check's build in $BUILD_DIR"
  export DD_COMMIT=$(gpu_commit)
else
  gpu_binaries dd_bench || { echo "run_gpu.sh: build failed" >&2; tail -n 40 "$GPU_BUILD_LOG"; exit 1; }
fi
echo "run_gpu.sh: binaries: $GPU_BIN_ORIGIN" >&2
B=$GPU_BENCH_DIR
log=$tmp/checks.log
json=$tmp/train.json
: >"$json"
status=0
rows=()
left() { echo $((BENCH_BUDGET - (SECONDS - t_start))); }
# run LIMIT COMMAND...: stdout to the tables, stderr to the check log; cut at LIMIT or the budget.
run() {
  local limit=$1
  shift
  local l
  l=$(left)
  [ "$limit" -gt "$l" ] && limit=$l
  if [ "$limit" -lt 8 ]; then
    echo "_not run (out of time, BENCH_BUDGET=${BENCH_BUDGET} s): \`$*\`_"
    rows+=("SKIP 0 $*")
    return 0
  fi
  local t0=$SECONDS rc
  echo "== $* (limit ${limit} s)" >>"$log"
  timeout -k 5 "$limit" "$@" 2>>"$log"
  rc=$?
  local r=ok
  if [ $rc = 124 ] || [ $rc = 137 ]; then r=CUT; echo "_cut at its ${limit} s limit: \`$*\`_"
  elif [ $rc != 0 ]; then r=FAIL; status=1; fi
  rows+=("$r $((SECONDS - t0)) $*")
  echo "   $r $((SECONDS - t0)) s: $*" >&2
}
peer_version=$("$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null \
               || echo 'torch not found')

"$PYTHON" - <<'EOF' >/dev/null 2>&1 || echo "run_gpu.sh: $PYTHON has no CUDA torch: the PyTorch rows will fail" >&2
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
EOF

# 1-2. The step and the sampler, ours and PyTorch's.
run 90 "$B/bench_train_step" --preset cifar --steps "$STEPS" --precision fp32,tf32,bf16 --json "$json" >/dev/null
# The tensor-core convs' options timed per shape in the first step (kernels/conv_autotune.h): what
# per-shape choices would give the step, and which they are (the table: the next rules).
run 50 "$B/bench_train_step" --preset cifar --steps "$STEPS" --precision bf16,tf32 --conv-autotune \
  --autotune-table "$tmp/conv_autotune.tsv" --json "$json" >/dev/null
for m in default fp32 bf16; do
  run 60 "$PYTHON" bench/torch_peer.py train --device cuda --preset cifar --mode $m --steps "$STEPS" --json "$json" >/dev/null
done
run 75 "$B/bench_train_step" --sample --images 256 --timesteps "$SAMPLE_TIMESTEPS" --precision fp32,tf32,bf16 --json "$json" >/dev/null
for m in default fp32 bf16; do
  run 45 "$PYTHON" bench/torch_peer.py sample --device cuda --mode $m --images 256 --timesteps "$SAMPLE_TIMESTEPS" \
    --json "$json" >/dev/null
done

# 3. PyTorch's best mode compiles (minutes of CPU) while 4. our kernels are timed on the GPU; its
# timed steps wait (--hold) until the kernel benches are done, so no two timings share the GPU.
hold=$tmp/hold
compile_pid=""
if [ "${SKIP_COMPILE:-0}" != 1 ] && [ "$(left)" -gt 60 ]; then
  timeout -k 5 $(($(left) - 10)) "$PYTHON" bench/torch_peer.py train --device cuda --preset cifar --mode compile-bf16 \
    --steps "$STEPS" --hold "$hold" --json "$json" >/dev/null 2>>"$log" &
  compile_pid=$!
fi
t_kernels=$SECONDS
{
  for b in conv2d group_norm elementwise attention adam inception; do
    limit=30
    # conv2d: fp32, then bf16 and tf32 each under the rules, autotuned and in cuDNN (75-100 s before
    # the autotuned columns).
    [ $b = conv2d ] && limit=140
    # Leave the compiled peer 40 s for its timed steps.
    [ -n "$compile_pid" ] && [ $limit -gt $(($(left) - 40)) ] && limit=$(($(left) - 40))
    run $limit "$B/bench_$b"
  done
} >"$tmp/kernels.md"
touch "$hold"
if [ -n "$compile_pid" ]; then
  t0=$SECONDS
  if wait "$compile_pid"; then r=ok; else r="FAIL or CUT (exit $?)"; status=1; fi
  rows+=("$r $((SECONDS - t_kernels)) torch_peer.py train --mode compile-bf16 (compiled during the kernel benches, timed after)")
fi
# torch.compile's max-autotune spends minutes autotuning: only when asked (MAX_AUTOTUNE=1) and time is left.
if [ "${MAX_AUTOTUNE:-0}" = 1 ]; then
  run $(($(left) - 20)) "$PYTHON" bench/torch_peer.py train --device cuda --preset cifar --mode compile-max-bf16 \
    --steps "$STEPS" --json "$json" >/dev/null
fi

{
  echo "## GPU"
  echo
  echo "Measured by \`bench/run_gpu.sh\` on $(date -u +%Y-%m-%d); $(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | head -n 1);"
  echo "binaries: $GPU_BIN_ORIGIN. Every kernel (ours and the yardsticks) was checked against the CPU backend"
  echo "before it was timed; a row that failed its check is not timed and says so."
  echo
  echo "### Training step and sampling vs PyTorch (GPU)"
  echo
  echo "Ours: \`bench_train_step\` in each \`--precision\` (fp32: SIMT kernels; tf32 and bf16: tensor-core convolutions,"
  echo "bf16 attention, TF32 cuBLAS, fp32 storage); PyTorch: \`bench/torch_peer.py\` ($peer_version),"
  echo "the same step (huber loss, clip 1.0, Adam 1e-3, EMA), ${STEPS} timed steps after 3 warm-up steps."
  echo "Rows: *like-for-like* pairs our fp32 with strict fp32, our tf32 with PyTorch's defaults (cuDNN convolutions"
  echo "in TF32, *as a user gets it*) and our bf16 with bf16 autocast; *the user's best alternative* is torch.compile"
  echo "with bf16 autocast, the row our bf16 must beat."
  echo "Sampling runs ${SAMPLE_TIMESTEPS} of the 1000 steps and is scaled; the per-image-step rate is what compares."
  echo "Peak memory: our caching allocator's peak bytes in use; torch.cuda.max_memory_allocated."
  echo
  DD_COMMIT=$DD_COMMIT "$PYTHON" bench/torch_peer.py table --json "$json" --command bench/run_gpu.sh
  echo
  echo "The kernel tables below were timed while torch.compile compiled the peer's model on the CPU (its"
  echo "warm-up steps may have shared the GPU for a moment); the compiled peer's timed steps ran after them."
  cat "$tmp/kernels.md"
} >"$tmp/gpu.md"
"$PYTHON" bench/splice_results.py gpu "$tmp/gpu.md" >&2
mkdir -p "$BUILD_DIR"
cp "$log" "$BUILD_DIR/checks_gpu.log" 2>/dev/null
cp "$json" "$BUILD_DIR/train_gpu.json" 2>/dev/null
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$log" "$json" "$tmp/gpu.md" bench/RESULTS.md "$OUT"/
  cp "$tmp/conv_autotune.tsv" "$OUT"/ 2>/dev/null
fi
echo
echo "## run_gpu.sh: $((SECONDS - t_start)) s; $(grep -c ' ok$' "$log") kernel checks passed"
printf '%s\n' "${rows[@]}" | sed 's/^/  /'
grep -E "FAIL|rror" "$log" | head -n 20
echo
cat "$tmp/gpu.md"
exit $status
