#!/usr/bin/env bash
# Builds the benchmarks and runs all of them on the CPU backend, with the PyTorch peer twice: Debian's
# /usr/bin/python3 and torch 1.13, and the newest torch from PyPI in .torch-venv/ (made by
# scripts/make_torch_venv.sh; without it a row says so), eager and torch.compile (inductor, C++ on
# the CPU), and writes the tables into bench/RESULTS.md's CPU section.
# The CPU figures use smaller batches than training's (each table says which): 2 cores would take
# minutes per CIFAR-10 step at batch 128. Environment: BUILD_DIR (default build), JOBS (default 2),
# PYTHON (default /usr/bin/python3), CIFAR_BATCH (default 16), STEPS (timed training steps, default 3),
# THREADS (threads for ours and PyTorch; default all cores; THREADS=N writes the section cpu-Nt, so a
# single-threaded run, steadier on a shared machine, sits beside the all-core one), VENV_PYTHON
# (default .torch-venv/bin/python), VENV_MODES (its modes, default "fp32 bf16 compile compile-bf16";
# each compile mode compiles for minutes on 2 cores before its timed steps), SKIP_BENCH=1 (only the
# training step and sampling rows), NO_SPLICE=1 (print the section instead of writing RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
CIFAR_BATCH=${CIFAR_BATCH:-16}
STEPS=${STEPS:-3}
THREADS=${THREADS:-}
VENV_PYTHON=${VENV_PYTHON:-.torch-venv/bin/python}
VENV_MODES=${VENV_MODES:-fp32 bf16 compile compile-bf16}
SECTION=cpu
if [ -n "$THREADS" ]; then
  export OMP_NUM_THREADS=$THREADS
  SECTION=cpu-${THREADS}t
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target dd_bench
B=$BUILD_DIR/bench
tmp=$(mktemp -d)
log=$tmp/checks.log
json=$tmp/train.json
status=0
run() { echo "== $*" >&2; "$@" 2>>"$log" || { echo "FAILED ($?): $*" >&2; status=1; }; }
# The PyPI torch: its rows, or one row per preset saying how to make the venv.
venv_peer() {  # train|sample ARGS...
  local cmd=$1; shift
  if [ -x "$VENV_PYTHON" ]; then
    run "$VENV_PYTHON" bench/torch_peer.py "$cmd" --device cpu --threads "${THREADS:-0}" "$@" --json "$json" >/dev/null
  else
    local preset=null; [ "$cmd" = train ] && preset="\"$(sed -n 's/.*--preset \([a-z]*\).*/\1/p' <<<"$*")\""
    echo "{\"kind\": \"$cmd\", \"preset\": $preset, \"device\": \"cpu\", \"mode\": \"fp32\", \"torch\": \"from PyPI\", \"unavailable\": \"no $VENV_PYTHON: make it with scripts/make_torch_venv.sh\"}" >>"$json"
  fi
}
{
  echo "## CPU${THREADS:+, $THREADS thread(s)}"
  echo
  echo "Measured by \`bench/run_cpu.sh\` on $(date -u +%Y-%m-%d). Every kernel was checked before it was timed"
  echo "(the check lines are in the run's log). On the CPU, \`% of copy\` compares with a 256 MB memcpy from DRAM:"
  echo "working sets that fit in cache exceed 100%."
  if [ -z "${SKIP_BENCH:-}" ]; then
    run "$B/bench_conv2d" --cpu
    run "$B/bench_group_norm" --cpu
    run "$B/bench_elementwise" --cpu
    run "$B/bench_attention" --cpu
    run "$B/bench_adam" --cpu
    run "$B/bench_inception" --cpu
  fi
  echo
  echo "### Training step and sampling vs PyTorch (CPU)"
  echo
  echo "Ours: \`bench_train_step --cpu\`; PyTorch: \`bench/torch_peer.py\` (seed U-Net of tests/torch/unet_ref.py,"
  echo "same step: huber loss, clip 1.0, Adam 1e-3, EMA), ${THREADS:-all} core(s) for both, ${STEPS} timed steps after one warm-up."
  echo "CIFAR-10 at batch ${CIFAR_BATCH} (not 128) on the CPU; sampling scaled down to 4 images x 10 steps"
  echo "(the per-image-step cost is what compares). Peak memory: the process's peak RSS. PyTorch twice: Debian's"
  echo "python3-torch (1.13: no torch.compile) and the newest from PyPI (\`scripts/make_torch_venv.sh\`: CPU only, its"
  echo "CUDA libraries stubbed), eager and \`torch.compile\` (inductor's C++ for the CPU; compilation is in the untimed warm-up)."
  for p in cifar fmnist; do
    bs=64; [ $p = cifar ] && bs=$CIFAR_BATCH
    run "$B/bench_train_step" --cpu --preset $p --batch $bs --steps "$STEPS" --warmup 1 --json "$json" >/dev/null
    for m in fp32 tf32 bf16 compile; do
      run "$PYTHON" bench/torch_peer.py train --device cpu --threads "${THREADS:-0}" --preset $p --mode $m --batch $bs --steps "$STEPS" \
        --warmup 1 --json "$json" >/dev/null
    done
    if [ -x "$VENV_PYTHON" ]; then
      for m in $VENV_MODES; do venv_peer train --preset $p --mode $m --batch $bs --steps "$STEPS" --warmup 1; done
    else
      venv_peer train --preset $p
    fi
  done
  run "$B/bench_train_step" --cpu --sample --images 4 --timesteps 10 --json "$json" >/dev/null
  run "$PYTHON" bench/torch_peer.py sample --device cpu --threads "${THREADS:-0}" --mode fp32 --images 4 --timesteps 10 --json "$json" >/dev/null
  for m in fp32 compile; do
    venv_peer sample --mode $m --images 4 --timesteps 10
    [ -x "$VENV_PYTHON" ] || break
  done
  "$PYTHON" bench/torch_peer.py table --json "$json" --command bench/run_cpu.sh
} >"$tmp/cpu.md"
if [ -n "${NO_SPLICE:-}" ]; then
  cat "$tmp/cpu.md"
else
  "$PYTHON" bench/splice_results.py "$SECTION" "$tmp/cpu.md"
fi
cp "$log" "$B/checks_cpu.log"; echo "check log: $B/checks_cpu.log" >&2
{ grep -c " ok$" "$log" || true; } | xargs -I{} echo "{} checks passed; failures:" >&2
grep -E "FAIL|rror" "$log" >&2 || true
exit $status
