#pragma once
// The cast pre-pass of the tensor-core convolutions (kernels/cuda/conv2d_tc.cu): each fp32 operand
// rounded once (bf16: nearest even; tf32: cvt.rna) and its channel dim zero-padded to whole 16-byte
// chunks (conv2d_tc_tiles.cuh says why); a bf16 operand padded with its bits unchanged; dx's
// weight flipped as it is packed.
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/dtype.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/warp_ops.cuh"

namespace dd::kernels::cuda::conv_tc {

template <class Op>
__device__ __forceinline__ typename Op::T round_operand(float v) {
  if constexpr (Op::kChunk == 8)
    return dtype_conv::f32_to_bf16(v);
  else
    return dtype_conv::bits_float(warp::f32_to_tf32(v));
}

// dst[r, c] = round(src[r, c]) for c < C, 0 for C <= c < Cp.
template <class Op>
__global__ void pack_kernel(const float* __restrict__ src, int64_t rows, int C, int Cp,
                            typename Op::T* __restrict__ dst) {
  const int64_t n = rows * Cp;
  DD_GRID_STRIDE(i, n) {
    const int64_t r = i / Cp;
    const int c = static_cast<int>(i - r * Cp);
    dst[i] = c < C ? round_operand<Op>(src[r * C + c]) : typename Op::T(0);
  }
}

// dst[r, c] = src[r, c] for c < C, 0 for C <= c < Cp: a bf16 operand (a conv input the tape keeps
// in bf16) zero-padded to whole chunks, its bits unchanged.
static __global__ void pad_bf16_kernel(const uint16_t* __restrict__ src, int64_t rows, int C, int Cp,
                                uint16_t* __restrict__ dst) {
  const int64_t n = rows * Cp;
  DD_GRID_STRIDE(i, n) {
    const int64_t r = i / Cp;
    const int c = static_cast<int>(i - r * Cp);
    dst[i] = c < C ? src[r * C + c] : uint16_t(0);
  }
}

// wt[ci, kh, kw, co] = round(w[co, K-1-kh, K-1-kw, ci]) for co < Co, 0 for Co <= co < Cop. W is
// float, or bf16 for a weight the tape keeps in bf16 (its values are already their own rounding).
template <class Op, class W>
__global__ void flip_pack_kernel(const W* __restrict__ w, int Co, int K, int Ci, int Cop,
                                 typename Op::T* __restrict__ wt) {
  const int64_t n = int64_t(Ci) * K * K * Cop;
  DD_GRID_STRIDE(i, n) {
    const int co = static_cast<int>(i % Cop);
    int64_t r = i / Cop;
    const int kw = static_cast<int>(r % K);
    r /= K;
    const int kh = static_cast<int>(r % K);
    const int ci = static_cast<int>(r / K);
    wt[i] = co < Co ? round_operand<Op>(dtype_conv::to_f32(w[((int64_t(co) * K + (K - 1 - kh)) * K + (K - 1 - kw)) * Ci + ci]))
                    : typename Op::T(0);
  }
}

}  // namespace dd::kernels::cuda::conv_tc
