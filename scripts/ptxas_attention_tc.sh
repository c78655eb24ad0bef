#!/usr/bin/env bash
# Registers, spills and shared memory of the bf16 tensor-core attention kernels
# (kernels/cuda/attention_tc.cu) and linear-attention kernels (kernels/cuda/linear_attention_tc.cu),
# from one nvcc -Xptxas -v compile each; normal builds stay quiet.
# Usage: scripts/ptxas_attention_tc.sh [arch] (default sm_90). One line per kernel: pass, dim_head,
# registers, spill stores / loads, stack frame, static shared memory. The figures are recorded at
# the top of attention_tc.cu and linear_attention_tc.cu.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-sm_90}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for f in attention_tc linear_attention_tc; do
  "$NVCC" -DDD_WITH_CUDA=1 -I. -O3 -DNDEBUG -arch="$ARCH" --expt-relaxed-constexpr -std=c++17 -x cu -c \
    "kernels/cuda/$f.cu" -o "$OUT/$f.o" -Xptxas -v 2>>"$OUT/ptxas.txt"
done
python3 - "$OUT/ptxas.txt" <<'PY'
import re, sys
cur = None
for line in open(sys.argv[1]):
    m = re.search(r"Compiling entry function '(\S+)'", line)
    if m:
        n = m.group(1)
        cur = None
        if "linear_attention_tc_" in n:
            # linear_attention_tc_<head|rows>_kernel<kD, kBackward, TQ>: TQ f (fp32 qkv) or t (bf16 qkv).
            k = re.search(r"linear_attention_tc_(head|rows)_kernelILi(\d+)ELb([01])E([ft])", n)
            if k:
                kind, d, bwd, tq = k.groups()
                cur = "%-8s dim_head %3s" % ("lin " + kind + (" bwd" if bwd == "1" else " fwd") +
                                             (" qkv bf16" if tq == "t" else ""), d)
        else:
            for kind, name in (("rows", "forward"), ("dkdv", "dK/dV"), ("dq", "dQ")):
                if "attention_tc_" + kind + "_kernel" in n:
                    cur = name
            if cur:
                d = re.search(r"kernelILi(\d+)E", n).group(1)
                if cur == "forward" and "ELb1E" in n:
                    cur = "stats"
                cur = "%-8s dim_head %3s" % (cur, d)
        frame = spill_st = spill_ld = "?"
        continue
    if not cur:
        continue
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m:
        frame, spill_st, spill_ld = m.groups()
    m = re.search(r"Used (\d+) registers.*?(\d+) bytes smem", line)
    if m:
        print(f"{cur}  registers {m.group(1):>4s}  spill stores {spill_st} loads {spill_ld} bytes"
              f"  stack {frame}  smem {m.group(2)}")
        cur = None
PY
