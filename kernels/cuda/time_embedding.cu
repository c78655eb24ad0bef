// Sinusoidal time embedding. The frequencies come from the host
// (time_embedding_frequencies, glibc's expf) so both backends use the same
// float32 f_i; only sinf/cosf are the device's own (CUDA's are within 2 ulp,
// glibc's within 1 ulp, so the two may differ by a few ulp).
#include <map>
#include <mutex>
#include <vector>

#include "kernels/cuda/launch.cuh"
#include "kernels/time_embedding.h"

namespace dd::kernels::cuda {

namespace {
constexpr int kBackwardThreads = 128;

__global__ void time_embedding_kernel(const float* t, const float* f, float* y, int64_t B, int64_t half) {
  const int64_t dim = 2 * half;
  DD_GRID_STRIDE(idx, B * dim) {
    const int64_t b = idx / dim, j = idx % dim;
    const int64_t i = j < half ? j : j - half;
    const float arg = __fmul_rn(t[b], f[i]);  // one float multiply, as torch
    y[idx] = j < half ? sinf(arg) : cosf(arg);
  }
}

// One block per timestep: each thread sums a strided subset of i in double,
// then a fixed shared-memory tree folds them (deterministic run to run).
__global__ void time_embedding_backward_kernel(const float* t, const float* f, const float* dy, float* dt,
                                               int64_t half) {
  __shared__ double buf[kBackwardThreads];
  const int64_t b = blockIdx.x;
  const float* g = dy + b * 2 * half;
  const float tb = t[b];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const float arg = __fmul_rn(tb, f[i]);
    float sn, cs;
    sincosf(arg, &sn, &cs);
    // The CPU's expression in double, kept unfused: f * (g_i cos - g_{half+i} sin).
    const double inner = __dsub_rn(__dmul_rn(static_cast<double>(g[i]), static_cast<double>(cs)),
                                   __dmul_rn(static_cast<double>(g[half + i]), static_cast<double>(sn)));
    s = __dadd_rn(s, __dmul_rn(static_cast<double>(f[i]), inner));
  }
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kBackwardThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) dt[b] = static_cast<float>(buf[0]);
}

// Uploaded once per dim and kept: a copy from pageable host memory waits for
// the stream to drain, which would stall every sampling step's forward.
Tensor frequencies_on_device(int64_t dim) {
  static std::mutex mu;
  static auto* cache = new std::map<int64_t, Tensor>();  // never freed: outlives the CUDA runtime at exit
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(dim);
  if (it == cache->end()) {
    const std::vector<float> f = time_embedding_frequencies(dim);
    it = cache->emplace(dim, Tensor::from_vector({static_cast<int64_t>(f.size())}, f, Device::CUDA)).first;
  }
  return it->second;
}
}  // namespace

Tensor time_embedding_forward(const Tensor& t, int64_t dim) {
  const int64_t B = t.dim(0), half = dim / 2;
  Tensor y = Tensor::empty({B, dim}, t.device());
  if (B == 0) return y;
  const Tensor f = frequencies_on_device(dim);
  time_embedding_kernel<<<grid_for(B * dim), kThreads, 0, stream()>>>(t.data(), f.data(), y.data(), B, half);
  DD_CUDA_LAUNCH_CHECK("time_embedding_kernel");
  return y;
}

Tensor time_embedding_backward(const Tensor& t, const Tensor& dy) {
  const int64_t B = t.dim(0), dim = dy.dim(1), half = dim / 2;
  Tensor dt = Tensor::empty({B}, t.device());
  if (B == 0) return dt;
  DD_CHECK(B <= 0x7fffffff, "time_embedding_backward (cuda): batch ", B, " exceeds the grid");
  const Tensor f = frequencies_on_device(dim);
  time_embedding_backward_kernel<<<static_cast<unsigned>(B), kBackwardThreads, 0, stream()>>>(
      t.data(), f.data(), dy.data(), dt.data(), half);
  DD_CUDA_LAUNCH_CHECK("time_embedding_backward_kernel");
  return dt;
}

}  // namespace dd::kernels::cuda
