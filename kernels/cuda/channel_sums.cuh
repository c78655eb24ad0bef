#pragma once
// Deterministic per-(batch, channel) sums over the positions of an NHWC tensor
// viewed as [B, S, C], shared by GroupNorm, the broadcast ops and the fused
// GroupNorm->scale/shift->SiLU op (their statistics and [B, C] / [C] gradients).
//
// Pass 1: a block covers 32 channels x one chunk of positions of one batch
// item; its 8 row lanes stride over the chunk, so a warp reads 32 consecutive
// channels (128 bytes) per position. The lanes are folded in lane order into
// one double partial per (chunk, b, c). Pass 2 folds the chunks in chunk order.
// No atomics: the result depends on the shape alone, bitwise, run to run.
//
// The term functor is called exactly once per element (b, s, c) and may also
// write an output there (dx of the broadcast ops comes out of the same pass).
#include <cstdint>

#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/cuda/channel_plan.h"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

// Double scratch in the caching allocator (a float tensor of twice the size).
struct DoubleScratch {
  Tensor t;
  explicit DoubleScratch(int64_t n) : t(Tensor::empty({std::max<int64_t>(1, 2 * n)}, Device::CUDA)) {}
  double* get() { return reinterpret_cast<double*>(t.data()); }
};

template <int K, typename Term>
__global__ void channel_partial_kernel(Term term, int64_t B, int64_t S, int64_t C, int64_t rows,
                                       int64_t chunks, double* part) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * int64_t(kColX) + tx;
  const int64_t chunk = blockIdx.y;
  const int64_t b = blockIdx.z;
  double acc[K];
#pragma unroll
  for (int k = 0; k < K; ++k) acc[k] = 0.0;
  if (c < C) {
    const int64_t s1 = chunk_end(chunk, rows, S);
    // Unrolled so a lane has several loads in flight instead of waiting out each one (the sums
    // still run in s order).
#pragma unroll 4
    for (int64_t s = chunk * rows + ty; s < s1; s += kColY) term(b, c, element_index(b, s, c, S, C), acc);
  }
  __shared__ double buf[K][kColY][kColX];
#pragma unroll
  for (int k = 0; k < K; ++k) buf[k][ty][tx] = acc[k];
  __syncthreads();
  if (ty == 0 && c < C) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      double t = 0.0;
      for (int y = 0; y < kColY; ++y) t += buf[k][y][tx];
      part[partial_slot(k, chunk, b, c, chunks, B, C)] = t;
    }
  }
}

// out[k * B*C + bc] = sum over chunks, in chunk order.
template <int K>
__global__ void channel_fold_kernel(const double* part, int64_t bc_count, int64_t chunks, double* out) {
  DD_GRID_STRIDE(bc, bc_count) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      double s = 0.0;
      for (int64_t j = 0; j < chunks; ++j) s += part[partial_slot(k, j, 0, bc, chunks, 1, bc_count)];
      out[k * bc_count + bc] = s;
    }
  }
}

// sums: K x [B, C] doubles on the device (K*B*C of them).
template <int K, typename Term>
void channel_sums(const Term& term, int64_t B, int64_t S, int64_t C, double* sums) {
  if (B * C == 0) return;
  if (S == 0) {  // no positions: every sum is 0
    cuda_mem::memset(sums, 0, static_cast<std::size_t>(K * B * C) * sizeof(double));
    return;
  }
  const ChunkPlan p = plan_chunks(B, S, C);
  DD_CHECK(p.ctiles <= 0x7fffffff && p.chunks <= 65535 && B <= 65535, "channel_sums: shape B=", B, " S=", S,
           " C=", C, " exceeds the grid limits");
  DoubleScratch part(K * p.chunks * B * C);
  const dim3 grid(static_cast<unsigned>(p.ctiles), static_cast<unsigned>(p.chunks), static_cast<unsigned>(B));
  channel_partial_kernel<K, Term><<<grid, dim3(kColX, kColY), 0, stream()>>>(term, B, S, C, p.rows, p.chunks,
                                                                            part.get());
  DD_CUDA_LAUNCH_CHECK("channel_partial_kernel");
  channel_fold_kernel<K><<<grid_for(B * C), kThreads, 0, stream()>>>(part.get(), B * C, p.chunks, sums);
  DD_CUDA_LAUNCH_CHECK("channel_fold_kernel");
}

// static: this header is compiled into several .cu files without -rdc.
static __global__ void double_to_float_kernel(const double* in, float* out, int64_t n) {
  DD_GRID_STRIDE(i, n) out[i] = static_cast<float>(in[i]);
}

inline void double_to_float(const double* in, float* out, int64_t n) {
  if (n == 0) return;
  double_to_float_kernel<<<grid_for(n), kThreads, 0, stream()>>>(in, out, n);
  DD_CUDA_LAUNCH_CHECK("double_to_float_kernel");
}

}  // namespace dd::kernels::cuda
