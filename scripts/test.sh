#!/usr/bin/env bash
# The test command: install dependencies, build (Release, CPU backend always,
# CUDA backend when the toolkit is found), run every test with ctest; then the CPU tests under
# ASan + UBSan (scripts/sanitize.sh) and a fixed budget of fuzzing per harness (scripts/fuzz.sh --ci).
# GPU tests report "skipped" on a machine without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/install_py_refs.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j"$(nproc)"
(cd "$BUILD_DIR" && ctest --output-on-failure -j"$(nproc)" "$@")
# The CPU suite again with ASan + UBSan (a second build folder), then each fuzz harness for a fixed
# number of executions under libFuzzer (issue 17). DD_QUICK=1 skips both (a local edit-test loop).
if [ "${DD_QUICK:-0}" != 1 ]; then
  # Left out under ASan (10x slower there): the GPU binary, and the two FID runs over a few hundred
  # Inception passes (tests/cli/fid_cli.sh, test_inception.cpp's PNG-folder case), whose code the other
  # inception and [fid] cases cover under ASan on a few images.
  bash scripts/sanitize.sh -E 'gpu_ops|fid_cli|fid: PNG folders'
  bash scripts/fuzz.sh --ci
fi
