#!/usr/bin/env bash
# The CPU test suite built with AddressSanitizer and UndefinedBehaviorSanitizer (DD_SANITIZE, a second
# build folder, build-asan/ or $ASAN_BUILD_DIR; no CUDA, no benchmarks): every ctest test that runs
# without a GPU, our code instrumented. Extra arguments go to ctest (e.g. -R conv2d).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDD_SANITIZE=ON -DDD_ENABLE_CUDA=OFF -DDD_BUILD_BENCH=OFF \
  -DDD_NATIVE=OFF >/dev/null
cmake --build "$B" -j"$(nproc)"
# Leaks count as failures; UBSan stops at the first report; the Python references the tests spawn
# are not instrumented and need nothing.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
# LeakSanitizer needs ptrace, which some containers deny: probe it, and say so when leaks go unchecked.
# (One small case: Catch2's listing exits with the number of cases, never 0.)
if ! "$B/tests/dd_tests" "crc32c: the standard check values, and extending equals one pass" >/dev/null 2>&1; then
  echo "sanitize: LeakSanitizer cannot run here (ptrace denied?): leaks are not checked, everything else is"
  export ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$B"
ctest --output-on-failure -j"$(nproc)" "$@"
