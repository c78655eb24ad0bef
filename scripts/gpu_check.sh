#!/usr/bin/env bash
# The check for a machine with an NVIDIA GPU, sized for a 15-minute lease (about 5 minutes on an
# H100 with carried binaries; see README "On a GPU machine"):
#   1. binaries: the carried .gpu-deps/bin.tgz when it matches these sources, else a Release build of
#      only dd_gpu_tests, train_ddpm, sample_ddpm and the bench binaries, with every core;
#   2. the GPU tests, one process per test case, several at a time (a failing case is named, with
#      the command that reruns it alone);
#   3. compute-sanitizer memcheck, racecheck, synccheck and initcheck over the op tests, side by side,
#      within one bounded window (cases not reached in time are listed as not checked, never passed);
#   4. 300 training steps of the Fashion-MNIST GPU preset, then a 64-image grid (1000 DDPM steps),
#      then 20 steps in bf16 with --conv-autotune, resumed for 10 more (the tuning table kept and
#      loaded back);
#   5. Nsight Compute profiles of the 3x3 64->64 conv's tensor-core kernels, with the time left;
#   6. a summary table, last. Exit status non-zero if any step failed.
# No CPU ctest here: CI runs it. Logs, the grid and the loss curve go to $CHECK_DIR (default
# gpu-check/) and to $OUT when set (the device tool's output folder).
#
# Budget knobs (seconds): CHECK_BUDGET (whole script, default 400: the summary always prints before
# it), SANITIZER_WINDOW (default 200), TEST_JOBS (6), SANITIZER_JOBS (4 per tool), STEPS (300);
# CHECK_DEVICE=cpu runs the train and sample parts on the CPU (a dry run of this script elsewhere).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHECK_DIR=${CHECK_DIR:-gpu-check}
STEPS=${STEPS:-300}
CHECK_BUDGET=${CHECK_BUDGET:-400}
SANITIZER_WINDOW=${SANITIZER_WINDOW:-200}
TEST_JOBS=${TEST_JOBS:-6}
SANITIZER_JOBS=${SANITIZER_JOBS:-4}
t_start=$SECONDS
mkdir -p "$CHECK_DIR"
rm -rf "${CHECK_DIR:?}/run" "${CHECK_DIR:?}/cases"
# shellcheck source=scripts/gpu_common.sh
source scripts/gpu_common.sh

names=() results=() times=() notes=()
record() { names+=("$1"); results+=("$2"); times+=("$3"); notes+=("$4"); }
left() { echo $((CHECK_BUDGET - (SECONDS - t_start))); }
# step NAME LOG SECONDS COMMAND...: runs the command (cut after SECONDS, or when the budget runs out),
# output to $CHECK_DIR/LOG; records PASS, FAIL or CUT and the seconds it took.
step() {
  local name=$1 log=$CHECK_DIR/$2 limit=$3
  shift 3
  local l
  l=$(left)
  [ "$limit" -gt "$l" ] && limit=$l
  if [ "$limit" -lt 10 ]; then
    record "$name" SKIP 0 "out of time (CHECK_BUDGET=$CHECK_BUDGET)"
    return 1
  fi
  echo "== $name: $* (limit ${limit} s)"
  local t0=$SECONDS rc
  timeout -k 10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then
    record "$name" PASS $((SECONDS - t0)) ""
  elif [ $rc = 124 ] || [ $rc = 137 ]; then
    record "$name" CUT $((SECONDS - t0)) "stopped at its ${limit} s limit; see $log"
    tail -n 20 "$log"
  else
    record "$name" FAIL $((SECONDS - t0)) "exit $rc; see $log"
    tail -n 40 "$log"
  fi
  return $rc
}
note() { notes[${#notes[@]}-1]="${notes[${#notes[@]}-1]}${notes[${#notes[@]}-1]:+; }$1"; }

gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
if [ -z "$gpu" ]; then
  echo "gpu_check: no NVIDIA GPU found (nvidia-smi lists none); this script is for a GPU machine" >&2
  exit 2
fi
echo "gpu_check: $gpu; $(nvcc --version 2>/dev/null | tail -n 2 | head -n 1); $(nproc) cores"

# 1. Binaries.
t0=$SECONDS
GPU_BUILD_LOG=$CHECK_DIR/build.log
if gpu_binaries dd_gpu_tests train_ddpm sample_ddpm dd_bench; then
  record "binaries" PASS $((SECONDS - t0)) "$GPU_BIN_ORIGIN"
else
  record "binaries" FAIL $((SECONDS - t0)) "build failed; see $GPU_BUILD_LOG"
  tail -n 40 "$GPU_BUILD_LOG"
fi
T=$(gpu_tests_binary)
export DD_COMMIT=${DD_COMMIT:-$(gpu_commit)}

if [ -x "$T" ]; then
  # 2. The GPU tests, each case in its own process.
  step "GPU tests (one process per case)" gpu_tests.log 240 \
    python3 scripts/gpu_cases.py --binary "$T" --name gpu_tests --jobs "$TEST_JOBS" --deadline 230 \
      --case-timeout 180 --timeout-fails --log-dir "$CHECK_DIR/cases" --summary "$CHECK_DIR/gpu_tests.sum"
  note "$(cat "$CHECK_DIR/gpu_tests.sum" 2>/dev/null)"

  # 3. The sanitizers side by side, each over the op tests, in one window. The training-step cases
  # repeat the same kernels for many steps and only add time; the allocator cases test the cache that
  # memcheck and initcheck run without (DD_CUDA_NO_CACHE=1: every tensor its own exact-size
  # cudaMalloc, so memcheck sees each tensor's own bounds and initcheck each one's first writes).
  # racecheck and synccheck (shared-memory hazards, barriers) also leave out the long shape sweeps:
  # the other cases of those ops launch every kernel variant.
  win=$SANITIZER_WINDOW
  [ "$win" -gt $(($(left) - 60)) ] && win=$(($(left) - 60))
  if [ "$win" -ge 30 ]; then
    t0=$SECONDS
    # NCCL's own kernels and threads are not ours to sanitize, and its case trains: left out too. So is
    # the case whose launch the device must refuse ([launch_error]): the sanitizers count that as an error.
    ops="~[train_step]~[allocator]~[nccl]~[launch_error]"
    tools=(memcheck racecheck synccheck initcheck)
    # The graph cases replay kernels the op cases launch eagerly, and under a sanitizer they ran
    # past 150 s on an H200: only memcheck keeps them (for the replays' memory). racecheck and
    # initcheck start from the end of the list, the other two from its start.
    declare -A filter=([memcheck]="$ops" [racecheck]="$ops~[sweep]~[multi_tensor]~[graphs]"
                       [synccheck]="$ops~[sweep]~[graphs]" [initcheck]="$ops~[sweep]~[graphs]")
    # racecheck and synccheck start with the tensor-core kernels' cases (cp.async pipelines, ldmatrix,
    # shared memory reused across stages: what the issue asks racecheck of), then go on in their order.
    declare -A order=([memcheck]="" [racecheck]="--reverse" [synccheck]="" [initcheck]="--reverse")
    declare -A first=([memcheck]="" [racecheck]="[tc]" [synccheck]="[tc]" [initcheck]="")
    declare -A jobs=([memcheck]=$SANITIZER_JOBS [racecheck]=$SANITIZER_JOBS [synccheck]=2 [initcheck]=2)
    declare -A extra=([memcheck]="--leak-check no" [racecheck]="" [synccheck]="" [initcheck]="")
    declare -A pid
    for tool in "${tools[@]}"; do
      envs=()
      case $tool in memcheck|initcheck) envs=(--env DD_CUDA_NO_CACHE=1) ;; esac
      fargs=()
      [ -n "${first[$tool]}" ] && fargs=(--first "${first[$tool]}")
      python3 scripts/gpu_cases.py --binary "$T" --filter "${filter[$tool]}" --name "$tool" --jobs "${jobs[$tool]}" \
        --deadline "$win" --case-timeout "$win" --log-dir "$CHECK_DIR/cases" "${envs[@]}" \
        --summary "$CHECK_DIR/$tool.sum" ${order[$tool]} "${fargs[@]}" \
        --wrap "compute-sanitizer --tool $tool --error-exitcode 1 ${extra[$tool]}" >"$CHECK_DIR/$tool.log" 2>&1 &
      pid[$tool]=$!
    done
    for tool in "${tools[@]}"; do
      if wait "${pid[$tool]}"; then r=PASS; else r=FAIL; tail -n 60 "$CHECK_DIR/$tool.log"; fi
      sum=$(cat "$CHECK_DIR/$tool.sum" 2>/dev/null || echo "no summary; see $CHECK_DIR/$tool.log")
      case "$sum" in *"not run"*|*timeout*) [ $r = PASS ] && r=PARTIAL ;; esac
      record "$tool (op tests, ${win} s window)" $r $((SECONDS - t0)) "$sum"
    done
  else
    record "sanitizers" SKIP 0 "out of time (CHECK_BUDGET=$CHECK_BUDGET)"
  fi
else
  record "GPU tests" SKIP 0 "no test binary"
fi

# 4. Train, then sample.
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
[ -d "$DATA" ] || DATA=$ROOT/.gpu-deps/fashion-mnist
if [ -x "$GPU_BIN_DIR/train_ddpm" ]; then
  step "train $STEPS steps (Fashion-MNIST GPU preset)" train.log 150 "$GPU_BIN_DIR/train_ddpm" --data "$DATA" \
    --out "$CHECK_DIR/run" --steps "$STEPS" --batch-size 64 --dim 32 --dim-mults 1,2,4 --lr 2e-4 \
    --log-every 50 --sample-every 0 --save-every 0 --n-samples 16 --device "${CHECK_DEVICE:-cuda}"
  ips=$(grep -Eo "done: step [0-9]+, [0-9.]+ img/s" "$CHECK_DIR/train.log" | grep -Eo "[0-9.]+ img/s")
  loss=$(tail -n 1 "$CHECK_DIR/run/metrics.csv" 2>/dev/null | cut -d, -f2)
  note "${ips:-?}; last logged loss ${loss:-?}"
  if [ -f "$CHECK_DIR/run/model.safetensors" ]; then
    step "sample 64 images (1000 steps)" sample.log 90 "$GPU_BIN_DIR/sample_ddpm" \
      --weights "$CHECK_DIR/run/model.safetensors" --n 64 --batch-size 64 --seed 3 --out "$CHECK_DIR/grid.png" \
      --device "${CHECK_DEVICE:-cuda}"
    note "$CHECK_DIR/grid.png"
  else
    record "sample 64 images (1000 steps)" SKIP 0 "no trained weights"
  fi
  # The tensor-core convs autotuned in the first (eager) step, the graph replaying the choices; the
  # resumed run loads the table it left (conv_autotune.tsv) instead of timing again.
  tuned=(--data "$DATA" --out "$CHECK_DIR/run_tuned" --batch-size 64 --dim 32 --dim-mults 1,2,4 --log-every 10
         --sample-every 0 --save-every 0 --n-samples 4 --precision bf16 --conv-autotune --device "${CHECK_DEVICE:-cuda}")
  if step "train 20 steps bf16 --conv-autotune, resume to 30" train_tuned.log 60 "$GPU_BIN_DIR/train_ddpm" \
       "${tuned[@]}" --steps 20 && step "resume to 30" train_tuned_resume.log 40 "$GPU_BIN_DIR/train_ddpm" \
       "${tuned[@]}" --steps 30 --resume; then
    note "$(wc -l <"$CHECK_DIR/run_tuned/conv_autotune.tsv" 2>/dev/null || echo no) tuned shapes in conv_autotune.tsv"
  fi
fi

# 5. Where the convolutions' time goes, with what time is left (about 60 s; the sweep script's
# profiles run only when a lease has minutes to spare, which none has had): Nsight Compute on the
# 3x3 64->64 conv at 32x32 (8 uses a step; every 3x3 dw at 3-7x cuDNN's time on 2026-11-28): the
# rules' three kernels, then the dw halo kernel's first launch (the tuned columns time it).
# --clock-control none: the lent machines' notes say to leave the clocks alone.
if command -v ncu >/dev/null 2>&1 && [ -x "$GPU_BENCH_DIR/bench_conv2d" ]; then
  ncu_sections=(--clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats
                --section Occupancy --section LaunchStats)
  conv=("$GPU_BENCH_DIR/bench_conv2d" --precision bf16 --only "32x32 64->64 k3 p1" --warmup 1 --repeats 1)
  step "ncu: the 3x3 64->64 conv's tensor-core kernels (rules)" ncu_conv_tc.txt 45 \
    ncu --kernel-name regex:conv_tc_ --launch-count 3 "${ncu_sections[@]}" "${conv[@]}"
  step "ncu: the dw halo kernel" ncu_dw_halo.txt 40 \
    ncu --kernel-name regex:conv_tc_wgrad_halo --launch-count 1 "${ncu_sections[@]}" "${conv[@]}"
else
  record "ncu profiles" SKIP 0 "no ncu or no bench_conv2d"
fi

table=$CHECK_DIR/summary.md
{
  echo "## gpu_check summary: $gpu, $(date -u +%Y-%m-%dT%H:%MZ), commit $DD_COMMIT, $((SECONDS - t_start)) s"
  echo
  echo "| step | result | seconds | notes |"
  echo "| --- | --- | --- | --- |"
  for i in "${!names[@]}"; do
    echo "| ${names[$i]} | ${results[$i]} | ${times[$i]} | ${notes[$i]} |"
  done
} >"$table"
failed=0
for r in "${results[@]}"; do case $r in PASS|PARTIAL) ;; *) failed=1 ;; esac; done

if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  # At most 8 files come back: the summary, three case tables, the grid, the tuned run's
  # conv_autotune.tsv, the ncu profiles (one file), and every log (the other sanitizers' tables, the
  # train and sample logs, each case's log, the loss curve) in one archive.
  cp "$table" "$CHECK_DIR/gpu_tests.log" "$CHECK_DIR/memcheck.log" "$CHECK_DIR/racecheck.log" "$OUT"/ 2>/dev/null
  cp "$CHECK_DIR/grid.png" "$OUT"/ 2>/dev/null
  cp "$CHECK_DIR/run/loss_curve.png" "$CHECK_DIR/" 2>/dev/null
  cat "$CHECK_DIR"/ncu_*.txt >"$OUT/ncu_conv.txt" 2>/dev/null
  tar -czf "$OUT/check_logs.tgz" -C "$CHECK_DIR" --exclude=run --exclude=run_tuned . 2>/dev/null
  cp "$CHECK_DIR/run_tuned/conv_autotune.tsv" "$OUT/conv_autotune_check.tsv" 2>/dev/null
fi

# Failing cases' details first, the table last (the device tool returns the end of the output).
for f in gpu_tests memcheck racecheck synccheck initcheck; do
  grep -q -- "^---- " "$CHECK_DIR/$f.log" 2>/dev/null && { echo; sed -n '/^---- /,$p' "$CHECK_DIR/$f.log" | tail -n 80; }
done
echo
cat "$table"
exit $failed
