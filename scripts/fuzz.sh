#!/usr/bin/env bash
# Fuzzes the readers of untrusted files with libFuzzer under ASan + UBSan (tests/fuzz): the
# safetensors reader, the IDX reader (raw and gzip), the CIFAR-10 reader, the image-folder decoder
# path, the weights file's config JSON and numpy's .npy/.npz files (FID statistics). Builds clang,
# CPU only, in build-fuzz/ (FUZZ_BUILD_DIR).
#
#   scripts/fuzz.sh --ci [HARNESS...]       what CI runs: a fixed number of executions per harness
#                                           (the table below, about 40 s each here), fixed seed, a fresh
#                                           corpus from the committed seeds only. Time plays no part, so
#                                           a commit fuzzed clean here is fuzzed the same way in CI.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]  exploration: SECONDS each (default 60), random seed unless
#                                           FUZZ_SEED is set, a corpus kept in build-fuzz/corpus/<name>/.
#
# New inputs never go into the committed seeds (tests/fuzz/corpus/<name>/). A crash leaves its
# reproducer in build-fuzz/crashes/<name>/ and makes the script exit non-zero; add the reproducer to
# the committed seeds with the fix, so ctest replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A ci_runs=([safetensors]=400000 [idx]=20000 [cifar10]=400000 [image_folder]=30000
                    [weights_config]=800000 [npz]=800000)
mode=explore
if [ "${1:-}" = --ci ]; then
  mode=ci
  shift
  secs=600  # a ceiling only, far above what the runs take; hitting it is reported
else
  secs=${1:-60}
  shift || true
fi
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
  mkdir -p "$B/crashes/$h"
  log="$B/fuzz_$h.log"
  if [ $mode = ci ]; then
    corpus="$B/ci-corpus/$h"
    rm -rf "$corpus"
    [ -n "${ci_runs[$h]:-}" ] || { echo "fuzz: no CI run count for harness $h (scripts/fuzz.sh ci_runs)"; exit 2; }
    budget=(-runs="${ci_runs[$h]}" -seed="${FUZZ_SEED:-1}")
  else
    corpus="$B/corpus/$h"
    budget=(-seed="${FUZZ_SEED:-0}")
  fi
  mkdir -p "$corpus"
  # One worker (the CI machine has two cores); inputs up to 64 KiB; OpenMP kept to one thread so
  # the readers' parallel loops do not multiply the memory ASan tracks.
  start=$SECONDS
  if OMP_NUM_THREADS=1 "$B/fuzz_$h" "$corpus" "tests/fuzz/corpus/$h" "${budget[@]}" -max_total_time="$secs" \
      -max_len=65536 -rss_limit_mb=2048 -timeout=20 -detect_leaks=$leaks -artifact_prefix="$B/crashes/$h/" \
      -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  took=$((SECONDS - start))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  seed=$(grep -o 'Seed: [0-9]*' "$log" | head -n1 | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $h: $result, $execs executions in ${took}s (seed $seed), corpus $(ls "$corpus" | wc -l) inputs (log $log)"
  if [ $mode = ci ] && [ $result = ok ] && [ "$execs" != "${ci_runs[$h]}" ]; then
    echo "fuzz $h: stopped by the ${secs}s ceiling before its ${ci_runs[$h]} runs: this run was not the CI's fixed one"
  fi
  [ "$result" = ok ] || tail -n 40 "$log"
done
exit $status
