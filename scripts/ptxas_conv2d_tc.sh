#!/usr/bin/env bash
# Registers and spills of the tensor-core convolution kernels (kernels/cuda/conv2d_tc.cu), from
# one nvcc -Xptxas -v compile; normal builds stay quiet. Usage: scripts/ptxas_conv2d_tc.sh [arch]
# (default sm_90). Prints one line per kernel: direction, operand type, tile, registers, spills.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-sm_90}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$NVCC" -DDD_WITH_CUDA=1 -I. -O3 -DNDEBUG -arch="$ARCH" --expt-relaxed-constexpr -std=c++17 -x cu -c \
  kernels/cuda/conv2d_tc.cu -o "$OUT/conv2d_tc.o" -Xptxas -v 2>"$OUT/ptxas.txt"
python3 - "$OUT/ptxas.txt" <<'PY'
import re, sys
cur = None
for line in open(sys.argv[1]):
    m = re.search(r"Compiling entry function '(\S+)'", line)
    if m:
        n = m.group(1)
        cur = None
        for kind in ("fprop", "wgrad", "pack", "flip_pack", "fold"):
            if kind + "_kernel" in n or kind + "_tc_splits" in n:
                cur = kind
        if "halo_fprop_kernel" in n:
            cur = "halo"
        if cur == "halo":
            cur += " %s 8x16 patch (128x64_64x32_S3)" % ("bf16" if "Bf16" in n else "tf32")
        elif cur in ("fprop", "wgrad"):
            t = re.search(r"TileShapeILi(\d+)ELi(\d+)ELi(\d+)ELi(\d+)ELi(\d+)", n)
            cur += " %s %sx%s_%sx%s_S%s" % ("bf16" if "Bf16" in n else "tf32", *t.groups())
        elif cur in ("pack", "flip_pack"):
            cur += " bf16" if "Bf16" in n else " tf32"
        spill = "?"
        continue
    if cur and "spill stores" in line:
        spill = re.search(r"(\d+) bytes spill stores", line).group(1)
    if cur and "Used" in line:
        regs = re.search(r"Used (\d+) registers", line).group(1)
        print(f"{cur:34s} registers {regs:>4s}  spill stores {spill} bytes")
        cur = None
PY
