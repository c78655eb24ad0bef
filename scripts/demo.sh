#!/usr/bin/env bash
# The main job: install dependencies, build, run the ops demo (op timings on
# the CPU backend, then a small denoiser trained with the tape and Adam).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j"$(nproc)" --target ops_demo
"$BUILD_DIR"/ops_demo "$@"
