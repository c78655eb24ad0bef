#!/usr/bin/env bash
# The test command: install dependencies, build (Release, CPU backend always,
# CUDA backend when the toolkit is found), run every test with ctest.
# GPU tests report "skipped" on a machine without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/install_py_refs.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" "$@"
