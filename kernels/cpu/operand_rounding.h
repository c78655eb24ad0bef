#pragma once
// The CPU backend's reading of the context's precision policy (engine/context.h). The GPU's
// reduced-precision paths round some operands (bf16: nearest even; tf32: cvt.rna, nearest with ties
// away) and accumulate in fp32; the CPU rounds the same operands the same way before its fp32
// kernels, so a CPU run in bf16 or tf32 has the GPU path's numerics up to the order of the fp32 sums
// and CPU tests check what the GPU's bf16 path computes. Which operands, per op:
//   plain conv (stride 1, square kernel; kernels/cuda/conv2d_tc.cu): x and w forward, dy and w for
//     dx, dy and x for dw; dbias sums the unrounded dy.                 TF32 -> tf32, BF16 -> bf16
//   linear (cuBLAS: TF32 math, or bf16 operands in cublasGemmEx): x and w forward, dy and w for
//     dx, dy and x for dw; dbias sums the unrounded dy.                 TF32 -> tf32, BF16 -> bf16
//   attention with dim_head 32, 64 or 128 (the bf16 tensor-core kernels): qkv and dy   BF16 -> bf16
//   attention with dim_head > 128 (cuBLAS GEMMs in TF32 math):           TF32, BF16 -> tf32
//   linear attention with dim_head 32 or 64 (the bf16 tensor-core kernels): qkv and dy  BF16 -> bf16
// Everything else (strided convs, GroupNorm, other linear attention widths, ...) is fp32 under every
// policy, on both backends. (The tensor-core kernels also round intermediate operands, P, S, the
// context; the tests' bounds cover that.)
#include <cstdint>

#include "engine/context.h"
#include "engine/tensor.h"

namespace dd::kernels::cpu {

enum class OperandRounding { None, TF32, BF16 };

OperandRounding conv_rounding(Precision p);
OperandRounding gemm_rounding(Precision p);
OperandRounding attention_rounding(Precision p, int64_t dim_head);
OperandRounding linear_attention_rounding(Precision p, int64_t dim_head);

// t itself for None (no copy); otherwise a new fp32 CPU tensor of t's rounded values. A bf16 t
// comes back widened to fp32 under every rounding: its values are already both roundings' own.
Tensor rounded(const Tensor& t, OperandRounding r);

}  // namespace dd::kernels::cpu
