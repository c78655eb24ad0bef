#!/usr/bin/env bash
# The main job: install dependencies, build, train the Fashion-MNIST demo preset on the CPU and
# sample from it. Everything lands in runs/fashion-mnist-demo (override with OUT=...).
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
# Demo preset: the seed U-Net at dim 16, dim_mults 1,2,4 (0.71M parameters), 28x28 Fashion-MNIST,
# batch 32, 4000 steps, 1000 timesteps: about 15 minutes on 2 cores.
"$BUILD_DIR"/train_ddpm --out "$OUT" --steps 4000 --batch-size 32 --dim 16 --dim-mults 1,2,4 \
  --lr 1e-3 --sample-every 0 --save-every 1000 --n-samples 36 "${RESUME[@]}" "$@"
"$BUILD_DIR"/sample_ddpm --weights "$OUT/model.safetensors" --n 16 --seed 1 --out "$OUT/grid.png" \
  --trajectory "$OUT/trajectory.png"
"$BUILD_DIR"/ddpm_tool info "$OUT/model.safetensors" | tail -n 1
echo "demo: samples in $OUT/samples/ and $OUT/grid.png, denoising strip in $OUT/trajectory.png,"
echo "      loss curve in $OUT/loss_curve.png, weights (EMA) in $OUT/model.safetensors"
