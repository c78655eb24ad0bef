#pragma once
// Device code and plans of the wide-head attention (kernels/cuda/attention_wide.cu), kept free of
// CUDA runtime and cuBLAS calls so the CPU tests can run them through tests/support/cuda_emulation.h
// with a host GEMM (tests/test_attention_wide_emulation.cpp).
//
// Per head h, batched over B, the N x N scores are materialised. Row-major matrices are the
// column-major transposes cuBLAS sees; with C = 3 * hidden the qkv row stride:
//   S = scale Q K^T      -> gemm(T, N, N, N, d, K, C, Q, C, S, N)
//   O = P V              -> gemm(N, N, d, N, N, V, C, P, N, O, hidden)
//   dP = dO V^T          -> gemm(T, N, N, N, d, V, C, dO, hidden, dP, N)
//   dS = scale P (dP - rowsum(P dP))   (row kernel, in place)
//   dQ = dS K            -> gemm(N, N, d, N, N, K, C, dS, N, dQ, C)
//   dK = dS^T Q          -> gemm(N, T, d, N, N, Q, C, dS, N, dK, C)
//   dV = P^T dO          -> gemm(N, T, d, N, N, dO, hidden, P, N, dV, C)
// Reductions run in fixed trees: results repeat bitwise.
#include <cmath>
#include <cstdint>

namespace dd::kernels::cuda::attn_wide {

constexpr int kRowThreads = 256;

struct RowParams {
  const float* p;  // backward: the probabilities
  float* s;        // forward: scores -> probabilities; backward: dP -> dS, in place
  int n;           // row length N
  float scale;
};

// Block-wide reduction of v (kMax: max, else sum) in a fixed tree; every thread gets the result.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = kRowThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s)
      buf[threadIdx.x] = kMax ? fmaxf(buf[threadIdx.x], buf[threadIdx.x + s]) : buf[threadIdx.x] + buf[threadIdx.x + s];
    __syncthreads();
  }
  const float r = buf[0];
  __syncthreads();
  return r;
}

// s[row, :] <- softmax(s[row, :]), one block per row.
__global__ void __launch_bounds__(kRowThreads) softmax_rows_kernel(RowParams q) {
  __shared__ float buf[kRowThreads];
  float* row = q.s + int64_t(blockIdx.x) * q.n;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < q.n; j += kRowThreads) m = fmaxf(m, row[j]);
  m = block_reduce<true>(m, buf);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < q.n; j += kRowThreads) {
    const float e = expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / block_reduce<false>(sum, buf);
  for (int j = threadIdx.x; j < q.n; j += kRowThreads) row[j] *= inv;
}

// s[row, :] <- scale * p * (s - sum_j p s), one block per row.
__global__ void __launch_bounds__(kRowThreads) softmax_backward_rows_kernel(RowParams q) {
  __shared__ float buf[kRowThreads];
  const float* prow = q.p + int64_t(blockIdx.x) * q.n;
  float* drow = q.s + int64_t(blockIdx.x) * q.n;
  float d = 0.0f;
  for (int j = threadIdx.x; j < q.n; j += kRowThreads) d += prow[j] * drow[j];
  d = block_reduce<false>(d, buf);
  for (int j = threadIdx.x; j < q.n; j += kRowThreads) drow[j] = q.scale * prow[j] * (drow[j] - d);
}

struct Dims {
  int64_t B, N, heads, d, hidden, C;
};

// gemm(ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, C, ldc, sc, batch): for every batch b,
// C[b] = alpha op(A[b]) op(B[b]) in column-major terms (cuBLAS's), beta 0.
// launch(kernel, blocks, threads, name, RowParams).
template <class Gemm, class Launch>
void forward_plan(const float* qkv, float* out, float* P, const Dims& g, Gemm&& gemm, Launch&& launch) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(g.d));
  for (int64_t h = 0; h < g.heads; ++h) {
    const float* q = qkv + h * g.d;
    const float* k = qkv + g.hidden + h * g.d;
    const float* v = qkv + 2 * g.hidden + h * g.d;
    gemm(true, false, g.N, g.N, g.d, scale, k, g.C, g.N * g.C, q, g.C, g.N * g.C, P, g.N, g.N * g.N, g.B);
    launch(softmax_rows_kernel, static_cast<unsigned>(g.B * g.N), kRowThreads, "softmax_rows_kernel",
           RowParams{nullptr, P, static_cast<int>(g.N), 1.0f});
    gemm(false, false, g.d, g.N, g.N, 1.0f, v, g.C, g.N * g.C, P, g.N, g.N * g.N, out + h * g.d, g.hidden,
         g.N * g.hidden, g.B);
  }
}

template <class Gemm, class Launch>
void backward_plan(const float* x, const float* dy, float* dx, float* P, float* dS, const Dims& g, Gemm&& gemm,
                   Launch&& launch) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(g.d));
  const int64_t sq = g.N * g.C, sy = g.N * g.hidden, sp = g.N * g.N;
  for (int64_t h = 0; h < g.heads; ++h) {
    const int64_t oq = h * g.d, ok = g.hidden + h * g.d, ov = 2 * g.hidden + h * g.d;
    gemm(true, false, g.N, g.N, g.d, scale, x + ok, g.C, sq, x + oq, g.C, sq, P, g.N, sp, g.B);
    launch(softmax_rows_kernel, static_cast<unsigned>(g.B * g.N), kRowThreads, "softmax_rows_kernel",
           RowParams{nullptr, P, static_cast<int>(g.N), 1.0f});
    gemm(true, false, g.N, g.N, g.d, 1.0f, x + ov, g.C, sq, dy + h * g.d, g.hidden, sy, dS, g.N, sp, g.B);
    launch(softmax_backward_rows_kernel, static_cast<unsigned>(g.B * g.N), kRowThreads,
           "softmax_backward_rows_kernel", RowParams{P, dS, static_cast<int>(g.N), scale});
    gemm(false, false, g.d, g.N, g.N, 1.0f, x + ok, g.C, sq, dS, g.N, sp, dx + oq, g.C, sq, g.B);
    gemm(false, true, g.d, g.N, g.N, 1.0f, x + oq, g.C, sq, dS, g.N, sp, dx + ok, g.C, sq, g.B);
    gemm(false, true, g.d, g.N, g.N, 1.0f, dy + h * g.d, g.hidden, sy, P, g.N, sp, dx + ov, g.C, sq, g.B);
  }
}

}  // namespace dd::kernels::cuda::attn_wide
