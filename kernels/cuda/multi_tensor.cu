#include <algorithm>
#include <array>
#include <vector>

#include "kernels/adam_math.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/multi_tensor_plan.h"
#include "kernels/multi_tensor.h"

namespace dd::kernels::cuda {

namespace {
constexpr int kBlockThreads = 512;

// The block's [lo, hi) range in its tensor.
template <int P>
__device__ __forceinline__ void block_range(const Table<P>& tab, int& t, int64_t& lo, int64_t& hi) {
  t = tab.tensor_of_block[blockIdx.x];
  lo = int64_t(tab.chunk_of_block[blockIdx.x]) * kChunk;
  hi = min(lo + kChunk, tab.n[t]);
}

// grad_scale: null, or a device float every gradient is multiplied by first (the clip factor,
// computed on the device by fold_partials_kernel). __fmul_rn keeps that product a rounding of its
// own, never contracted into the update's arithmetic: bitwise the in-place scale, then Adam.
// s_dev: null, or the step's scalars in device memory (a captured graph's), read instead of s.
__global__ void __launch_bounds__(kBlockThreads) adam_multi_kernel(Table<4> tab, AdamStepScalars s,
                                                                   const float* grad_scale,
                                                                   const AdamStepScalars* s_dev) {
  if (s_dev) s = *s_dev;
  int t;
  int64_t lo, hi;
  block_range(tab, t, lo, hi);
  const float scale = grad_scale ? *grad_scale : 1.0f;
  float* p = tab.ptr[0][t];
  const float* g = tab.ptr[1][t];
  float* m = tab.ptr[2][t];
  float* v = tab.ptr[3][t];
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    float pi = p[i], mi = m[i], vi = v[i];
    adam_element(pi, grad_scale ? __fmul_rn(g[i], scale) : g[i], mi, vi, s);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

__global__ void __launch_bounds__(kBlockThreads) ema_multi_kernel(Table<2> tab, float w) {
  int t;
  int64_t lo, hi;
  block_range(tab, t, lo, hi);
  float* s = tab.ptr[0][t];
  const float* p = tab.ptr[1][t];
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s[i] = lerp_f(s[i], p[i], w);
}

__global__ void __launch_bounds__(kBlockThreads) scale_multi_kernel(Table<1> tab, float alpha) {
  int t;
  int64_t lo, hi;
  block_range(tab, t, lo, hi);
  float* x = tab.ptr[0][t];
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) x[i] *= alpha;
}

// The flat (single-tensor) forms: the same per-element arithmetic, a grid-stride loop over [0, n).
__global__ void __launch_bounds__(kBlockThreads) adam_flat_kernel(float* p, const float* g, float* m, float* v,
                                                                  int64_t n, AdamStepScalars s,
                                                                  const float* grad_scale,
                                                                  const AdamStepScalars* s_dev) {
  if (s_dev) s = *s_dev;
  const float scale = grad_scale ? *grad_scale : 1.0f;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float pi = p[i], mi = m[i], vi = v[i];
    adam_element(pi, grad_scale ? __fmul_rn(g[i], scale) : g[i], mi, vi, s);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

__global__ void __launch_bounds__(kBlockThreads) ema_flat_kernel(float* sh, const float* p, int64_t n, float w) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) sh[i] = lerp_f(sh[i], p[i], w);
}

__global__ void __launch_bounds__(kBlockThreads) scale_flat_kernel(float* x, int64_t n, float alpha) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) x[i] *= alpha;
}

// One double partial per block (the grid depends only on n, so the sum is reproducible).
__global__ void __launch_bounds__(kBlockThreads) sum_squares_flat_kernel(const float* x, int64_t n, double* partial) {
  __shared__ double red[kBlockThreads];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  double acc = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc += double(x[i]) * double(x[i]);
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int stride2 = kBlockThreads / 2; stride2 > 0; stride2 >>= 1) {
    if (threadIdx.x < stride2) red[threadIdx.x] += red[threadIdx.x + stride2];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

// One double partial per block, written at its global block index; the
// in-block tree has a fixed shape, so the result is reproducible.
__global__ void __launch_bounds__(kBlockThreads)
    sum_squares_multi_kernel(Table<1> tab, double* partial, int64_t first_block) {
  __shared__ double red[kBlockThreads];
  int t;
  int64_t lo, hi;
  block_range(tab, t, lo, hi);
  const float* x = tab.ptr[0][t];
  double acc = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) acc += double(x[i]) * double(x[i]);
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = kBlockThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) red[threadIdx.x] += red[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[first_block + blockIdx.x] = red[0];
}

// One block folds every partial: each thread a strided subset in order, then a fixed tree. With
// clip non-null it also writes clip_grad_norm_'s factor and the norm there, in the host's double
// arithmetic (IEEE sqrt and division), so nothing is read back to decide the clip.
__global__ void __launch_bounds__(kBlockThreads)
    fold_partials_kernel(const double* partial, int64_t n, double* out, double max_norm, float* clip) {
  __shared__ double red[kBlockThreads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = kBlockThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) red[threadIdx.x] += red[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *out = red[0];
    if (clip) {
      const double norm = sqrt(red[0]);
      const double coef = max_norm / (norm + 1e-6);
      clip[0] = coef < 1.0 ? float(coef) : 1.0f;
      clip[1] = float(norm);
    }
  }
}

std::vector<std::array<float*, 1>> one_ptr(const std::vector<Tensor>& ts, std::vector<int64_t>& sizes) {
  std::vector<std::array<float*, 1>> ptrs;
  for (const Tensor& t : ts) {
    ptrs.push_back({const_cast<float*>(t.data())});
    sizes.push_back(t.numel());
  }
  return ptrs;
}
}  // namespace

namespace {
void adam_launches(const std::vector<AdamSlot>& slots, const AdamStepScalars& s, const float* grad_scale,
                   const AdamStepScalars* s_dev) {
  if (slots.size() == 1) {
    const AdamSlot& a = slots[0];
    const int64_t n = a.param.numel();
    if (n == 0) return;
    float* p = const_cast<float*>(a.param.data());
    float* m = const_cast<float*>(a.m.data());
    float* v = const_cast<float*>(a.v.data());
    adam_flat_kernel<<<flat_blocks(n), kBlockThreads, 0, stream()>>>(p, a.grad.data(), m, v, n, s, grad_scale, s_dev);
    DD_CUDA_LAUNCH_CHECK("adam_flat_kernel");
    return;
  }
  std::vector<std::array<float*, 4>> ptrs;
  std::vector<int64_t> sizes;
  for (const AdamSlot& a : slots) {
    ptrs.push_back({const_cast<float*>(a.param.data()), const_cast<float*>(a.grad.data()),
                    const_cast<float*>(a.m.data()), const_cast<float*>(a.v.data())});
    sizes.push_back(a.param.numel());
  }
  for_each_table<4>(ptrs, sizes, [&](const Table<4>& tab, int blocks, int64_t) {
    adam_multi_kernel<<<blocks, kBlockThreads, 0, stream()>>>(tab, s, grad_scale, s_dev);
    DD_CUDA_LAUNCH_CHECK("adam_multi_kernel");
  });
}

// The sum of squares of every tensor into device scratch; returns it, holding the partials and, at
// [total_blocks], the total (doubles in a float tensor), or an undefined tensor for no elements.
Tensor sum_squares_device(const std::vector<Tensor>& ts, int64_t& total_blocks, double max_norm, float* clip) {
  std::vector<int64_t> sizes;
  const auto ptrs = one_ptr(ts, sizes);
  const bool flat = ts.size() == 1;
  total_blocks = 0;
  if (flat)
    total_blocks = flat_blocks(sizes[0]);
  else
    for (int64_t n : sizes) total_blocks += (n + kChunk - 1) / kChunk;
  if (total_blocks == 0) return Tensor();
  Tensor scratch = Tensor::empty({2 * (total_blocks + 1)}, ts.front().device());
  double* partial = reinterpret_cast<double*>(scratch.data());
  if (flat) {
    const int blocks = static_cast<int>(total_blocks);
    sum_squares_flat_kernel<<<blocks, kBlockThreads, 0, stream()>>>(ts[0].data(), sizes[0], partial);
    DD_CUDA_LAUNCH_CHECK("sum_squares_flat_kernel");
  } else {
    for_each_table<1>(ptrs, sizes, [&](const Table<1>& tab, int blocks, int64_t first) {
      sum_squares_multi_kernel<<<blocks, kBlockThreads, 0, stream()>>>(tab, partial, first);
      DD_CUDA_LAUNCH_CHECK("sum_squares_multi_kernel");
    });
  }
  fold_partials_kernel<<<1, kBlockThreads, 0, stream()>>>(partial, total_blocks, partial + total_blocks, max_norm,
                                                          clip);
  DD_CUDA_LAUNCH_CHECK("fold_partials_kernel");
  return scratch;
}
}  // namespace

void adam_update_multi(const std::vector<AdamSlot>& slots, const AdamStepScalars& s) {
  adam_launches(slots, s, nullptr, nullptr);
}

void adam_update_multi_scaled(const std::vector<AdamSlot>& slots, const AdamStepScalars& s, const Tensor& grad_scale,
                              const Tensor& step_scalars) {
  adam_launches(slots, s, grad_scale.data(),
                step_scalars.defined() ? static_cast<const AdamStepScalars*>(step_scalars.raw_data()) : nullptr);
}

Tensor clip_coefficient_multi(const std::vector<Tensor>& grads, double max_norm, Device dev) {
  Tensor clip = Tensor::empty({2}, dev);
  int64_t total_blocks = 0;
  const Tensor scratch = sum_squares_device(grads, total_blocks, max_norm, clip.data());
  if (total_blocks == 0) clip = Tensor::from_vector({2}, {1.0f, 0.0f}, dev);  // no gradient: no clip
  return clip;
}

void ema_update_multi(const std::vector<Tensor>& shadows, const std::vector<Tensor>& params, float w) {
  if (shadows.size() == 1) {
    const int64_t n = shadows[0].numel();
    if (n == 0) return;
    float* sh = const_cast<float*>(shadows[0].data());
    ema_flat_kernel<<<flat_blocks(n), kBlockThreads, 0, stream()>>>(sh, params[0].data(), n, w);
    DD_CUDA_LAUNCH_CHECK("ema_flat_kernel");
    return;
  }
  std::vector<std::array<float*, 2>> ptrs;
  std::vector<int64_t> sizes;
  for (std::size_t i = 0; i < shadows.size(); ++i) {
    ptrs.push_back({const_cast<float*>(shadows[i].data()), const_cast<float*>(params[i].data())});
    sizes.push_back(shadows[i].numel());
  }
  for_each_table<2>(ptrs, sizes, [&](const Table<2>& tab, int blocks, int64_t) {
    ema_multi_kernel<<<blocks, kBlockThreads, 0, stream()>>>(tab, w);
    DD_CUDA_LAUNCH_CHECK("ema_multi_kernel");
  });
}

double sum_squares_multi(const std::vector<Tensor>& ts) {
  int64_t total_blocks = 0;
  const Tensor scratch = sum_squares_device(ts, total_blocks, 0.0, nullptr);
  if (total_blocks == 0) return 0.0;
  double result = 0.0;
  cuda_mem::copy_d2h(&result, reinterpret_cast<const double*>(scratch.data()) + total_blocks, sizeof(double));
  return result;
}

void scale_multi_(const std::vector<Tensor>& ts, float alpha) {
  if (ts.size() == 1) {
    const int64_t n = ts[0].numel();
    if (n == 0) return;
    scale_flat_kernel<<<flat_blocks(n), kBlockThreads, 0, stream()>>>(const_cast<float*>(ts[0].data()), n, alpha);
    DD_CUDA_LAUNCH_CHECK("scale_flat_kernel");
    return;
  }
  std::vector<int64_t> sizes;
  const auto ptrs = one_ptr(ts, sizes);
  for_each_table<1>(ptrs, sizes, [&](const Table<1>& tab, int blocks, int64_t) {
    scale_multi_kernel<<<blocks, kBlockThreads, 0, stream()>>>(tab, alpha);
    DD_CUDA_LAUNCH_CHECK("scale_multi_kernel");
  });
}

}  // namespace dd::kernels::cuda
