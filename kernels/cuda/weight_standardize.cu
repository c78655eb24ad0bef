// Weight standardisation: one block per output channel. Statistics in double,
// as the CPU backend (kernels/cpu/weight_standardize.cpp), so w_hat and dw carry
// only their final float rounding; block sums fold in a fixed order.
#include "kernels/cuda/launch.cuh"
#include "kernels/weight_standardize.h"

namespace dd::kernels::cuda {

namespace {
constexpr int kWsThreads = 256;

// Sum of v over the block, returned to every thread. buf holds kWsThreads doubles.
__device__ double block_sum(double v, double* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kWsThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = buf[0];
  __syncthreads();  // buf is reused by the next call
  return total;
}

struct RowStats {
  double mean, rstd;
};

__device__ RowStats row_stats(const float* w, int64_t n, float eps, double* buf) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kWsThreads) s += w[i];
  const double mean = block_sum(s, buf) / static_cast<double>(n);
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kWsThreads) {
    const double d = w[i] - mean;
    ss += d * d;
  }
  const double var = block_sum(ss, buf) / static_cast<double>(n);
  return {mean, 1.0 / sqrt(var + static_cast<double>(eps))};
}

__global__ void __launch_bounds__(kWsThreads) ws_forward_kernel(const float* __restrict__ w, int64_t n, float eps,
                                                                float* __restrict__ out) {
  __shared__ double buf[kWsThreads];
  const float* src = w + blockIdx.x * n;
  float* dst = out + blockIdx.x * n;
  const RowStats st = row_stats(src, n, eps, buf);
  for (int64_t i = threadIdx.x; i < n; i += kWsThreads) dst[i] = static_cast<float>((src[i] - st.mean) * st.rstd);
}

// dw = rstd * (g - mean(g) - w_hat * mean(g * w_hat)), w_hat recomputed in double.
__global__ void __launch_bounds__(kWsThreads) ws_backward_kernel(const float* __restrict__ w,
                                                                 const float* __restrict__ dw_hat, int64_t n,
                                                                 float eps, float* __restrict__ dw) {
  __shared__ double buf[kWsThreads];
  const float* src = w + blockIdx.x * n;
  const float* g = dw_hat + blockIdx.x * n;
  float* dst = dw + blockIdx.x * n;
  const RowStats st = row_stats(src, n, eps, buf);
  double sg = 0.0, sgx = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kWsThreads) {
    sg += g[i];
    sgx += g[i] * ((src[i] - st.mean) * st.rstd);
  }
  const double mg = block_sum(sg, buf) / static_cast<double>(n);
  const double mgx = block_sum(sgx, buf) / static_cast<double>(n);
  for (int64_t i = threadIdx.x; i < n; i += kWsThreads) {
    const double xhat = (src[i] - st.mean) * st.rstd;
    dst[i] = static_cast<float>(st.rstd * (g[i] - mg - xhat * mgx));
  }
}
}  // namespace

Tensor weight_standardize_forward(const Tensor& w, float eps) {
  const int64_t rows = w.dim(0), n = w.numel() / rows;
  DD_CHECK(rows <= 0x7fffffff, "weight_standardize (cuda): ", rows, " output channels exceed the grid");
  Tensor out = Tensor::empty(w.shape(), w.device());
  ws_forward_kernel<<<static_cast<unsigned>(rows), kWsThreads, 0, stream()>>>(w.data(), n, eps, out.data());
  DD_CUDA_LAUNCH_CHECK("ws_forward_kernel");
  return out;
}

Tensor weight_standardize_backward(const Tensor& w, const Tensor& dw_hat, float eps) {
  const int64_t rows = w.dim(0), n = w.numel() / rows;
  DD_CHECK(rows <= 0x7fffffff, "weight_standardize_backward (cuda): ", rows, " output channels exceed the grid");
  Tensor dw = Tensor::empty(w.shape(), w.device());
  ws_backward_kernel<<<static_cast<unsigned>(rows), kWsThreads, 0, stream()>>>(w.data(), dw_hat.data(), n, eps,
                                                                             dw.data());
  DD_CUDA_LAUNCH_CHECK("ws_backward_kernel");
  return dw;
}

}  // namespace dd::kernels::cuda
