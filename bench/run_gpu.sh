#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (H100): builds the benchmarks (Release, sm_90), runs every kernel
# benchmark against its yardstick (cuDNN, cuBLAS, the device's measured copy bandwidth and SGEMM
# rate), our training step and sampler against the PyTorch peer (PYTHON, default python3, with a
# CUDA torch: eager fp32, TF32, bf16 autocast, torch.compile), and writes the tables into
# bench/RESULTS.md's GPU section. Budget: under 10 minutes on an H100.
#
# A bare lent GPU machine lacks our Debian build dependencies: bring .gpu-deps/ (made by
# scripts/pack_gpu_deps.sh), as for scripts/gpu_check.sh. Environment: BUILD_DIR (default
# build-gpu), CUDA_ARCH (90), PYTHON (python3), SAMPLE_TIMESTEPS (1000), STEPS (timed training
# steps, 20), SKIP_COMPILE=1 to leave torch.compile out. Logs are copied to $OUT when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build-gpu}
PYTHON=${PYTHON:-python3}
SAMPLE_TIMESTEPS=${SAMPLE_TIMESTEPS:-1000}
STEPS=${STEPS:-20}
t_start=$SECONDS
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >/dev/null 2>&1 || {
  echo "run_gpu.sh: no NVIDIA GPU found; bench/run_cpu.sh is the CPU command" >&2
  exit 2
}
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DDD_BUILD_TESTS=OFF)
if [ ! -f /usr/include/eigen3/Eigen/Core ]; then
  [ -d .gpu-deps/usr ] || { echo "run_gpu.sh: no Eigen and no .gpu-deps/ (see scripts/pack_gpu_deps.sh)" >&2; exit 2; }
  DEPS=$ROOT/.gpu-deps/usr
  CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$DEPS" -DCMAKE_CXX_FLAGS="-isystem $DEPS/include"
               -DCMAKE_CUDA_FLAGS="-isystem $DEPS/include")
fi
cmake -S . -B "$BUILD_DIR" "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target dd_bench
echo "build: $((SECONDS - t_start)) s" >&2
B=$BUILD_DIR/bench
tmp=$(mktemp -d)
log=$tmp/checks.log
json=$tmp/train.json
status=0
run() {
  local t0=$SECONDS
  echo "== $*" >&2
  "$@" 2>>"$log" || { echo "FAILED ($?): $*" >&2; status=1; }
  echo "   $((SECONDS - t0)) s" >&2
}
modes=(fp32 tf32 bf16 compile)
[ "${SKIP_COMPILE:-0}" = 1 ] && modes=(fp32 tf32 bf16)
{
  echo "## GPU"
  echo
  echo "Measured by \`bench/run_gpu.sh\` on $(date -u +%Y-%m-%d); $(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | head -n 1)."
  echo "Every kernel (ours and the yardsticks) was checked against the CPU backend before it was timed."
  run "$B/bench_conv2d"
  run "$B/bench_group_norm"
  run "$B/bench_elementwise"
  run "$B/bench_attention"
  run "$B/bench_adam"
  echo
  echo "### Training step and sampling vs PyTorch (GPU)"
  echo
  echo "Ours: \`bench_train_step\`; PyTorch: \`bench/torch_peer.py\` ($("$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null || echo 'torch not found')),"
  echo "the same step (huber loss, clip 1.0, Adam 1e-3, EMA), ${STEPS} timed steps after 3 warm-up steps."
  echo "Peak memory: our caching allocator's peak bytes in use; torch.cuda.max_memory_allocated."
  for p in cifar fmnist; do
    run "$B/bench_train_step" --preset $p --steps "$STEPS" --json "$json" >/dev/null
    for m in "${modes[@]}"; do
      run "$PYTHON" bench/torch_peer.py train --device cuda --preset $p --mode $m --steps "$STEPS" --json "$json" >/dev/null
    done
  done
  run "$B/bench_train_step" --sample --images 256 --timesteps "$SAMPLE_TIMESTEPS" --json "$json" >/dev/null
  for m in fp32 tf32 bf16; do
    run "$PYTHON" bench/torch_peer.py sample --device cuda --mode $m --images 256 --timesteps "$SAMPLE_TIMESTEPS" \
      --json "$json" >/dev/null
  done
  "$PYTHON" bench/torch_peer.py table --json "$json" --command bench/run_gpu.sh
} >"$tmp/gpu.md"
"$PYTHON" bench/splice_results.py gpu "$tmp/gpu.md"
cp "$log" "$B/checks_gpu.log"
cp "$json" "$B/train_gpu.json"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$log" "$json" "$tmp/gpu.md" bench/RESULTS.md "$OUT"/; fi
echo "$(grep -c ' ok$' "$log") checks passed; total $((SECONDS - t_start)) s" >&2
grep -E "FAIL|rror" "$log" >&2 || true
exit $status
