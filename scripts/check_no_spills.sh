#!/usr/bin/env bash
# Fails when any tensor-core kernel (the convolutions' tiles, the bf16 attention at dim_head 32,
# 64 and 128, the bf16 linear attention at 32 and 64) spills registers on sm_90: the property the
# bench comments and issue 12 state, kept by
# CI (ctest `ptxas_no_spills`, CUDA builds only). Prints both scripts' tables. Needs nvcc, no GPU.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
status=0
for s in scripts/ptxas_conv2d_tc.sh scripts/ptxas_attention_tc.sh; do
  out=$(bash "$s" "$@") || { echo "check_no_spills: $s failed" >&2; status=1; continue; }
  echo "$out"
  lines=$(grep -c "spill stores" <<<"$out")
  if [ "$lines" -eq 0 ]; then
    echo "check_no_spills: $s printed no kernel" >&2
    status=1
  fi
  if grep -Ev "spill stores 0( loads 0)? bytes" <<<"$out" | grep -q "spill stores"; then
    echo "check_no_spills: spills in $s:" >&2
    grep -Ev "spill stores 0( loads 0)? bytes" <<<"$out" | grep "spill stores" >&2
    status=1
  fi
done
exit $status
