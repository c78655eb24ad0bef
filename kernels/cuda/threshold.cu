// Dynamic thresholding's per-sample scale (kernels/threshold.h). The two order statistics of |x0|
// are found by bisection over the 31-bit patterns of non-negative floats (ordered like their values):
// about 32 block-wide counts over the sample each, which for a few thousand to a few hundred
// thousand elements per sample costs less than the sampler's model call by orders of magnitude, and
// needs neither a sort buffer nor atomics.
#include "engine/dtype.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/threshold.h"
#include "kernels/threshold_math.h"

namespace dd::kernels::cuda {

namespace {

constexpr uint32_t kInfBits = 0x7f800000u;

__device__ inline uint32_t abs_bits(float v) { return dtype_conv::float_bits(v) & 0x7fffffffu; }

// Block-wide sum of per-thread counts; every thread returns the total. blockDim.x == kThreads.
__device__ inline int64_t block_total(int64_t c, int64_t* red) {
  red[threadIdx.x] = c;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) red[threadIdx.x] += red[threadIdx.x + stride];
    __syncthreads();
  }
  const int64_t total = red[0];
  __syncthreads();  // red is reused by the next call
  return total;
}

__device__ inline int64_t count_le(const float* x, int64_t n, uint32_t v, int64_t* red) {
  int64_t c = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) c += abs_bits(x[i]) <= v ? 1 : 0;
  return block_total(c, red);
}

// The k-th smallest (0-based) bit pattern: the least v with count(<= v) > k.
__device__ inline uint32_t order_statistic(const float* x, int64_t n, int64_t k, int64_t* red) {
  uint32_t lo = 0, hi = kInfBits;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (count_le(x, n, mid, red) > k)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

__global__ void threshold_scale_kernel(const float* x0, int64_t n, QuantileRank r, float max_value, float* s) {
  __shared__ int64_t red[kThreads];
  const float* x = x0 + static_cast<int64_t>(blockIdx.x) * n;
  int64_t nan = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) nan += abs_bits(x[i]) > kInfBits ? 1 : 0;
  if (block_total(nan, red) > 0) {  // uniform across the block: no thread skips a barrier
    if (threadIdx.x == 0) s[blockIdx.x] = dtype_conv::bits_float(0x7fc00000u);
    return;
  }
  const uint32_t lo = order_statistic(x, n, r.lo, red);
  uint32_t hi = lo;
  if (r.hi != r.lo) hi = count_le(x, n, lo, red) > r.hi ? lo : order_statistic(x, n, r.hi, red);
  if (threadIdx.x == 0) s[blockIdx.x] = threshold_scale(dtype_conv::bits_float(lo), dtype_conv::bits_float(hi), r.w, max_value);
}

}  // namespace

Tensor dynamic_threshold_scale(const Tensor& x0, double ratio, double max_value) {
  const int64_t B = x0.dim(0), n = x0.numel() / B;
  DD_CHECK(B <= 2147483647, "dynamic_threshold_scale: ", B, " samples exceed the grid");
  Tensor s = Tensor::empty({B}, x0.device());
  const QuantileRank r = quantile_rank(static_cast<float>(ratio), n);
  threshold_scale_kernel<<<static_cast<unsigned>(B), kThreads, 0, stream()>>>(x0.data(), n, r,
                                                                              static_cast<float>(max_value), s.data());
  DD_CUDA_LAUNCH_CHECK("threshold_scale_kernel");
  return s;
}

}  // namespace dd::kernels::cuda
