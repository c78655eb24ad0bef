#!/usr/bin/env bash
# The main job: install dependencies, build, train a Fashion-MNIST preset (a larger one when an NVIDIA
# GPU is present) and sample from it. Everything lands in runs/fashion-mnist-demo (override with OUT=...).
# Running it again continues the same run (--resume) instead of overwriting it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-runs/fashion-mnist-demo}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j"$(nproc)" --target train_ddpm sample_ddpm ddpm_tool
RESUME=()
[ -f "$OUT/checkpoint.safetensors" ] && RESUME=(--resume)
# The preset depends on the device train_ddpm will pick (cuda when a GPU is present; DEVICE=cpu
# forces the CPU). A resumed run keeps the preset it started with.
DEVICE=${DEVICE:-auto}
if [ "$DEVICE" = cuda ] || { [ "$DEVICE" = auto ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
  # GPU preset: the seed U-Net at dim 32, dim_mults 1,2,4 (the bench's Fashion-MNIST preset), batch 64,
  # 10000 steps, 1000 timesteps.
  echo "demo: GPU found: training the larger GPU preset (dim 32, dim_mults 1,2,4, batch 64, 10000 steps)"
  PRESET=(--steps 10000 --batch-size 64 --dim 32 --dim-mults 1,2,4 --lr 2e-4 --save-every 2000 --device cuda)
else
  # CPU preset: the seed U-Net at dim 16, dim_mults 1,2,4 (0.71M parameters), 28x28 Fashion-MNIST,
  # batch 32, 4000 steps, 1000 timesteps: about 20 minutes of training on 2 cores (107 img/s).
  echo "demo: no GPU: training the CPU preset (dim 16, dim_mults 1,2,4, batch 32, 4000 steps)"
  PRESET=(--steps 4000 --batch-size 32 --dim 16 --dim-mults 1,2,4 --lr 1e-3 --save-every 1000 --device cpu)
fi
if [ ${#RESUME[@]} -gt 0 ]; then
  # Model flags are fixed by the run; only the step count and the device may change on resume.
  PRESET=("${PRESET[0]}" "${PRESET[1]}" "${PRESET[@]: -2}")
fi
"$BUILD_DIR"/train_ddpm --out "$OUT" "${PRESET[@]}" --sample-every 0 --n-samples 36 "${RESUME[@]}" "$@"
"$BUILD_DIR"/sample_ddpm --weights "$OUT/model.safetensors" --n 16 --seed 1 --out "$OUT/grid.png" \
  --trajectory "$OUT/trajectory.png"
"$BUILD_DIR"/ddpm_tool info "$OUT/model.safetensors" | tail -n 1
echo "demo: samples in $OUT/samples/ and $OUT/grid.png, denoising strip in $OUT/trajectory.png,"
echo "      loss curve in $OUT/loss_curve.png, weights (EMA) in $OUT/model.safetensors"
