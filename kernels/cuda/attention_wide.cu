// Softmax attention for heads wider than the flash kernels' registers hold (dim_head > 128, e.g.
// google/ddpm-cifar10-32's single head over 256 channels at 16x16): the N x N scores are
// materialised per (batch, head) and the products run as cuBLAS strided-batched SGEMMs (pedantic
// fp32, as kernels/cuda/linear.cu; no spills: no per-thread rows), with row kernels for the softmax
// and its backward. One head at a time, batched over B; scratch is B x N x N floats.
//
// Row-major matrices are cuBLAS column-major transposes: with C = 3 * hidden the qkv row stride,
//   S = scale Q K^T      -> gemm(T, N, N, N, d, K, C, Q, C, S, N)
//   O = P V              -> gemm(N, N, d, N, N, V, C, P, N, O, hidden)
//   dP = dO V^T          -> gemm(T, N, N, N, d, V, C, dO, hidden, dP, N)
//   dS = scale P (dP - rowsum(P dP))   (row kernel, in place)
//   dQ = dS K            -> gemm(N, N, d, N, N, K, C, dS, N, dQ, C)
//   dK = dS^T Q          -> gemm(N, T, d, N, N, Q, C, dS, N, dK, C)
//   dV = P^T dO          -> gemm(N, T, d, N, N, dO, hidden, P, N, dV, C)
// Every reduction has a fixed order (cuBLAS without atomics, block trees): repeatable bitwise.
#include <climits>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/cuda/cublas.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
constexpr int kRowThreads = 256;

// Block-wide reduction of v (kMax: max, else sum) in a fixed tree; every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float v, float* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = kRowThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] = kMax ? fmaxf(buf[threadIdx.x], buf[threadIdx.x + s])
                                                 : buf[threadIdx.x] + buf[threadIdx.x + s];
    __syncthreads();
  }
  const float r = buf[0];
  __syncthreads();
  return r;
}

// s[row, :] <- softmax(s[row, :]) for each of the grid's rows (length n).
__global__ void __launch_bounds__(kRowThreads) softmax_rows_kernel(float* s, int n) {
  __shared__ float buf[kRowThreads];
  float* row = s + int64_t(blockIdx.x) * n;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += kRowThreads) m = fmaxf(m, row[j]);
  m = block_reduce<true>(m, buf);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < n; j += kRowThreads) {
    const float e = expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / block_reduce<false>(sum, buf);
  for (int j = threadIdx.x; j < n; j += kRowThreads) row[j] *= inv;
}

// dp[row, :] <- scale * p * (dp - sum_j p dp) for each row.
__global__ void __launch_bounds__(kRowThreads) softmax_backward_rows_kernel(const float* p, float* dp, int n,
                                                                            float scale) {
  __shared__ float buf[kRowThreads];
  const float* prow = p + int64_t(blockIdx.x) * n;
  float* drow = dp + int64_t(blockIdx.x) * n;
  float d = 0.0f;
  for (int j = threadIdx.x; j < n; j += kRowThreads) d += prow[j] * drow[j];
  d = block_reduce<false>(d, buf);
  for (int j = threadIdx.x; j < n; j += kRowThreads) drow[j] = scale * prow[j] * (drow[j] - d);
}

int as_int(int64_t v, const char* what) {
  DD_CHECK(v >= 0 && v <= INT_MAX, "attention (cuda, wide heads): ", what, " = ", v, " exceeds int");
  return static_cast<int>(v);
}

struct Dims {
  int64_t B, N, heads, d, hidden, C;
};

// C[b] = alpha op(A[b]) op(B[b]) (+ beta C[b]) over the batch, column-major as cuBLAS sees it.
void gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
          int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb, float beta, float* C, int64_t ldc,
          int64_t sc, int64_t batch) {
  DD_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_handle(), ta, tb, as_int(m, "m"), as_int(n, "n"), as_int(k, "k"),
                                            &alpha, A, as_int(lda, "lda"), sa, B, as_int(ldb, "ldb"), sb, &beta, C,
                                            as_int(ldc, "ldc"), sc, as_int(batch, "B")));
}

// P [B, N, N] = softmax(scale Q K^T) of head h.
void probabilities(const float* qkv, const Dims& g, int64_t h, float scale, float* P) {
  const float* q = qkv + h * g.d;
  const float* k = qkv + g.hidden + h * g.d;
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, g.N, g.N, g.d, scale, k, g.C, g.N * g.C, q, g.C, g.N * g.C, 0.0f, P, g.N, g.N * g.N,
       g.B);
  softmax_rows_kernel<<<as_int(g.B * g.N, "B*N"), kRowThreads, 0, stream()>>>(P, as_int(g.N, "N"));
  DD_CUDA_LAUNCH_CHECK("softmax_rows_kernel");
}

Dims dims_of(const Tensor& qkv, int64_t heads, int64_t d) {
  const int64_t B = qkv.dim(0), C = qkv.dim(-1);
  return {B, qkv.numel() / (B * C), heads, d, heads * d, C};
}
}  // namespace

Tensor attention_wide_forward(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  const Dims g = dims_of(qkv, heads, dim_head);
  Shape out_shape = qkv.shape();
  out_shape.back() = g.hidden;
  Tensor out = Tensor::empty(out_shape, qkv.device());
  if (g.B == 0 || g.N == 0) return out;
  Tensor P = Tensor::empty({g.B, g.N, g.N}, qkv.device());
  const float scale = 1.0f / std::sqrt(static_cast<float>(g.d));
  for (int64_t h = 0; h < g.heads; ++h) {
    probabilities(qkv.data(), g, h, scale, P.data());
    const float* v = qkv.data() + 2 * g.hidden + h * g.d;
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, g.d, g.N, g.N, 1.0f, v, g.C, g.N * g.C, P.data(), g.N, g.N * g.N, 0.0f,
         out.data() + h * g.d, g.hidden, g.N * g.hidden, g.B);
  }
  return out;
}

Tensor attention_wide_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  const Dims g = dims_of(qkv, heads, dim_head);
  Tensor dqkv = Tensor::empty(qkv.shape(), qkv.device());
  if (g.B == 0 || g.N == 0) return dqkv;
  Tensor P = Tensor::empty({g.B, g.N, g.N}, qkv.device()), dS = Tensor::empty({g.B, g.N, g.N}, qkv.device());
  const float scale = 1.0f / std::sqrt(static_cast<float>(g.d));
  const float* x = qkv.data();
  float* dx = dqkv.data();
  const int64_t sq = g.N * g.C, sy = g.N * g.hidden, sp = g.N * g.N;
  for (int64_t h = 0; h < g.heads; ++h) {
    const int64_t oq = h * g.d, ok = g.hidden + h * g.d, ov = 2 * g.hidden + h * g.d;
    probabilities(x, g, h, scale, P.data());
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, g.N, g.N, g.d, 1.0f, x + ov, g.C, sq, dy.data() + h * g.d, g.hidden, sy, 0.0f,
         dS.data(), g.N, sp, g.B);
    softmax_backward_rows_kernel<<<as_int(g.B * g.N, "B*N"), kRowThreads, 0, stream()>>>(P.data(), dS.data(),
                                                                                          as_int(g.N, "N"), scale);
    DD_CUDA_LAUNCH_CHECK("softmax_backward_rows_kernel");
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, g.d, g.N, g.N, 1.0f, x + ok, g.C, sq, dS.data(), g.N, sp, 0.0f, dx + oq, g.C, sq,
         g.B);
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, g.d, g.N, g.N, 1.0f, x + oq, g.C, sq, dS.data(), g.N, sp, 0.0f, dx + ok, g.C, sq,
         g.B);
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, g.d, g.N, g.N, 1.0f, dy.data() + h * g.d, g.hidden, sy, P.data(), g.N, sp, 0.0f,
         dx + ov, g.C, sq, g.B);
  }
  return dqkv;
}

}  // namespace dd::kernels::cuda
