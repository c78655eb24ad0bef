#!/usr/bin/env bash
# The one command for a machine with an NVIDIA GPU: builds Release, runs the GPU tests (every op
# against the CPU backend, the whole training step, the sampler), runs compute-sanitizer memcheck and
# racecheck over the op tests, trains 300 steps of the Fashion-MNIST GPU preset, samples a grid from
# it, and prints a summary table last. Exits non-zero if any step failed.
#
# A bare lent GPU machine has CUDA and CMake but not our Debian build dependencies or the dataset:
# run scripts/pack_gpu_deps.sh on the CPU machine first and carry .gpu-deps along; this script uses
# it when the system has no Eigen. Logs and images go to $CHECK_DIR (default gpu-check/), and are
# also copied to $OUT when that is set (the device tool's output folder).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build-gpu}
CHECK_DIR=${CHECK_DIR:-gpu-check}
STEPS=${STEPS:-300}
mkdir -p "$CHECK_DIR"
rm -rf "$CHECK_DIR/run"

names=() results=() times=() notes=()
record() { names+=("$1"); results+=("$2"); times+=("$3"); notes+=("$4"); }
# step NAME LOG COMMAND...: runs the command, output to $CHECK_DIR/LOG, records pass/fail and seconds.
step() {
  local name=$1 log=$CHECK_DIR/$2
  shift 2
  echo "== $name: $*"
  local t0=$SECONDS
  if "$@" >"$log" 2>&1; then
    record "$name" PASS $((SECONDS - t0)) ""
  else
    record "$name" FAIL $((SECONDS - t0)) "see $log"
    tail -n 30 "$log"
  fi
}

gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
if [ -z "$gpu" ]; then
  echo "gpu_check: no NVIDIA GPU found (nvidia-smi lists none); this script is for a GPU machine" >&2
  exit 2
fi
echo "gpu_check: $gpu; $(nvcc --version | tail -n 2 | head -n 1)"

CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}")
if [ ! -f /usr/include/eigen3/Eigen/Core ]; then
  if [ ! -d .gpu-deps/usr ]; then
    echo "gpu_check: this machine lacks the build dependencies and there is no .gpu-deps/: run" >&2
    echo "  scripts/pack_gpu_deps.sh where the Debian packages are, and bring .gpu-deps along" >&2
    exit 2
  fi
  DEPS=$ROOT/.gpu-deps/usr
  CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$DEPS" -DCMAKE_CXX_FLAGS="-isystem $DEPS/include"
               -DCMAKE_CUDA_FLAGS="-isystem $DEPS/include")
fi
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
[ -d "$DATA" ] || DATA=$ROOT/.gpu-deps/fashion-mnist

step "configure" configure.log cmake -S . -B "$BUILD_DIR" "${CMAKE_ARGS[@]}"
step "build (Release, sm_${CUDA_ARCH:-90})" build.log cmake --build "$BUILD_DIR" -j"$(nproc)"
T=$BUILD_DIR/tests/dd_gpu_tests
step "GPU tests (all)" gpu_tests.log "$T" --durations yes
n_cases=$(grep -Eo "test cases?: *[0-9]+|in [0-9]+ test cases" "$CHECK_DIR/gpu_tests.log" | tail -n 1)
notes[${#notes[@]}-1]="${notes[${#notes[@]}-1]}${n_cases}"
# The parity tests want a Python with torch: Debian's on our machines, the image's python3 on a lent one.
[ -n "${DD_TORCH_PYTHON:-}" ] || { /usr/bin/python3 -c "import torch" 2>/dev/null || export DD_TORCH_PYTHON=$(command -v python3); }
step "CPU tests (ctest)" ctest.log bash -c "cd '$BUILD_DIR' && ctest -j$(nproc) --output-on-failure -E gpu_ops"
# The op tests under the sanitizers; the multi-step training tests repeat the same kernels and only add
# time. racecheck (shared-memory hazards) also skips the long shape sweeps ("[sweep]"): the other
# cases of the same ops launch every kernel variant. Each tool is bounded, so a slow one shows as a
# failed row instead of eating the whole budget.
# DD_CUDA_NO_CACHE=1: one exact-size cudaMalloc per tensor, so memcheck sees every tensor's own bounds.
step "memcheck (op tests, no allocator cache)" memcheck.log env DD_CUDA_NO_CACHE=1 timeout 300 \
  compute-sanitizer --tool memcheck --error-exitcode 1 --leak-check no "$T" "~[train_step]~[allocator]"
step "racecheck (op tests but the sweeps)" racecheck.log timeout 240 compute-sanitizer --tool racecheck \
  --error-exitcode 1 "$T" "~[train_step]~[multi_tensor]~[sweep]"
step "train $STEPS steps (Fashion-MNIST GPU preset)" train.log "$BUILD_DIR"/train_ddpm --data "$DATA" \
  --out "$CHECK_DIR/run" --steps "$STEPS" --batch-size 64 --dim 32 --dim-mults 1,2,4 --lr 2e-4 \
  --log-every 50 --sample-every 0 --save-every 0 --n-samples 16 --device cuda
ips=$(grep -Eo "done: step [0-9]+, [0-9.]+ img/s" "$CHECK_DIR/train.log" | grep -Eo "[0-9.]+ img/s")
loss=$(tail -n 1 "$CHECK_DIR/run/metrics.csv" 2>/dev/null | cut -d, -f2)
notes[${#notes[@]}-1]="${ips:-?} ; last logged loss ${loss:-?}"
step "sample 64 images (1000 steps)" sample.log "$BUILD_DIR"/sample_ddpm --weights "$CHECK_DIR/run/model.safetensors" \
  --n 64 --batch-size 64 --seed 3 --out "$CHECK_DIR/grid.png" --device cuda
notes[${#notes[@]}-1]="$CHECK_DIR/grid.png"

if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$CHECK_DIR"/*.log "$OUT"/ 2>/dev/null
  cp "$CHECK_DIR/grid.png" "$OUT"/ 2>/dev/null
  cp "$CHECK_DIR/run/loss_curve.png" "$OUT"/ 2>/dev/null
fi

echo
echo "## gpu_check summary: $gpu, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf "| %-48s | %-6s | %7s | %s\n" "step" "result" "seconds" "notes"
failed=0
for i in "${!names[@]}"; do
  printf "| %-48s | %-6s | %7s | %s\n" "${names[$i]}" "${results[$i]}" "${times[$i]}" "${notes[$i]}"
  [ "${results[$i]}" = PASS ] || failed=1
done
exit $failed
