#!/usr/bin/env bash
# Fuzzes the readers of untrusted files with libFuzzer under ASan + UBSan (tests/fuzz): the
# safetensors reader, the IDX reader (raw and gzip), the CIFAR-10 reader, the image-folder decoder
# path, the weights file's config JSON and numpy's .npy/.npz files (FID statistics). Usage:
# scripts/fuzz.sh [SECONDS_EACH] [HARNESS...] (default 60 s each, all six). Builds clang, CPU only,
# in build-fuzz/ (FUZZ_BUILD_DIR). New inputs go to build-fuzz/corpus/<name>/, never into the
# committed seeds (tests/fuzz/corpus/<name>/). A crash leaves its reproducer in
# build-fuzz/crashes/<name>/ and makes the script exit non-zero.
# libFuzzer's seed is fixed (FUZZ_SEED, default 1) so a CI run repeats the mutations a run here made;
# FUZZ_SEED=0 draws a random one (long exploratory runs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(safetensors idx cifar10 image_folder weights_config npz)
B=${FUZZ_BUILD_DIR:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDD_FUZZ=ON -DDD_ENABLE_CUDA=OFF \
  -DDD_BUILD_TESTS=OFF -DDD_BUILD_BENCH=OFF -DDD_NATIVE=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" --target "${harnesses[@]/#/fuzz_}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
leaks=1
# LeakSanitizer needs ptrace, which some containers deny: probe it, and say so when leaks go unchecked.
if ! "$B/fuzz_${harnesses[0]}" -runs=0 "tests/fuzz/corpus/${harnesses[0]}" >/dev/null 2>&1; then
  echo "fuzz: LeakSanitizer cannot run here (ptrace denied?): leaks are not checked, everything else is"
  export ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}
  leaks=0
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for h in "${harnesses[@]}"; do
  mkdir -p "$B/corpus/$h" "$B/crashes/$h"
  log="$B/fuzz_$h.log"
  # One worker (the CI machine has two cores); inputs up to 64 KiB; OpenMP kept to one thread so
  # the readers' parallel loops do not multiply the memory ASan tracks.
  if OMP_NUM_THREADS=1 "$B/fuzz_$h" "$B/corpus/$h" "tests/fuzz/corpus/$h" -max_total_time="$secs" -max_len=65536 \
      -rss_limit_mb=2048 -timeout=20 -seed="${FUZZ_SEED:-1}" -detect_leaks=$leaks -artifact_prefix="$B/crashes/$h/" -print_final_stats=1 \
      >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $h: $result, $execs executions in ${secs}s, corpus $(ls "$B/corpus/$h" | wc -l) inputs (log $log)"
  [ "$result" = ok ] || tail -n 40 "$log"
done
exit $status
