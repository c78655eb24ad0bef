#pragma once
// The per-(batch, group) and per-channel steps that GroupNorm and the fused
// GroupNorm->scale/shift->SiLU op share. They follow kernels/cpu/group_norm.cpp
// step for step (double sums per (b, c), then per group in channel order), so
// the CUDA results differ from the CPU only by the order of the position sums.
#include <cstdint>
#include <initializer_list>

#include "engine/tensor.h"
#include "kernels/cuda/channel_sums.cuh"
#include "kernels/cuda/warp_ops.cuh"

namespace dd::kernels::cuda {

// The per-(b, g) and per-channel steps below reduce over up to a few hundred values each, and
// there are only B*G or C of them: one thread per output walking its values serially waits out
// one dependent load per value (128 of them at 4x4x512, batch 128: the whole cost of GroupNorm at
// the U-Net's small maps on an H200, 2026-11-27). So a warp per output: lane l takes values l,
// l + 32, ... in order, and the lanes fold by a fixed xor tree. The order depends on the shape
// alone, so results still repeat bitwise; it differs from the CPU's (channel order) only inside
// double sums that are rounded once to float.
static __device__ __forceinline__ double warp_fold(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += warp::shfl_xor_sync(warp::kFullMask, v, o);
  return v;
}

// Warp-stride loop: every lane of a warp holds the same item, so the fold's shuffles never
// diverge. Launch with grid_for(count * 32).
#define DD_WARP_STRIDE(item, count)                                                                  \
  for (int64_t item = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32; item < (count); \
       item += int64_t(gridDim.x) * blockDim.x / 32)

// x viewed as [B, S, C] with C = G groups of D channels.
struct GnDims {
  int64_t B, S, C, G, D;
  GnDims(const Tensor& x, int64_t groups)
      : B(x.dim(0)), S(x.numel() / (x.dim(0) * x.dim(-1))), C(x.dim(-1)), G(groups), D(x.dim(-1) / groups) {}
  int64_t numel() const { return B * S * C; }
  double group_size() const { return static_cast<double>(S * D); }
};

// The elementwise passes (normalize, dx) go four channels at a time where they can: 16-byte
// loads and stores and one index computation per four elements, each element still computed by
// the same expression as the one-at-a-time path (so both give the same bits). That needs C % 4 == 0
// (four consecutive elements share b and s) and every pointer 16-byte aligned (a view may start
// anywhere); otherwise the pass runs one element at a time.
inline bool quad_ok(int64_t C, std::initializer_list<const void*> ptrs) {
  if (C % 4 != 0) return false;
  for (const void* p : ptrs)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// y = (x - mean) * (rstd gamma) + beta: the CPU's expression, mean subtracted first (GroupNorm's
// output, and the fused op's h).
struct Normalize {
  const float* gamma;
  const float* beta;
  const float* mean;
  const double* rstd_d;
  int64_t G, D;
  __device__ float operator()(int64_t b, int64_t c, float x) const {
    const int64_t bg = b * G + c / D;
    const float k = static_cast<float>(rstd_d[bg] * gamma[c]);
    return (x - mean[bg]) * k + beta[c];
  }
};

// Elements 4q .. 4q+3 of x as floats: one 16-byte load, or one 8-byte load of four bf16 (the
// backward's x may be its bf16 copy: kernels/group_norm.h). The pointer is 16-byte aligned (quad_ok).
static __device__ __forceinline__ float4 load_quad(const float* x, int64_t q) {
  return reinterpret_cast<const float4*>(x)[q];
}
static __device__ __forceinline__ float4 load_quad(const bf16* x, int64_t q) {
  using dtype_conv::bf16_to_f32;
  const uint2 w = reinterpret_cast<const uint2*>(x)[q];
  return make_float4(bf16_to_f32(static_cast<uint16_t>(w.x & 0xffffu)), bf16_to_f32(static_cast<uint16_t>(w.x >> 16)),
                     bf16_to_f32(static_cast<uint16_t>(w.y & 0xffffu)), bf16_to_f32(static_cast<uint16_t>(w.y >> 16)));
}

// Four floats as four bf16 in one 8-byte word, the lowest channel in the low half of .x.
static __device__ __forceinline__ uint2 bf16_quad(float4 v) {
  using dtype_conv::f32_to_bf16;
  return make_uint2(f32_to_bf16(v.x) | (uint32_t{f32_to_bf16(v.y)} << 16),
                    f32_to_bf16(v.z) | (uint32_t{f32_to_bf16(v.w)} << 16));
}

// f(b, c, v) for the four channels c.. c+3 of one float4.
template <class F>
__device__ __forceinline__ float4 quad_map(const F& f, int64_t b, int64_t c, float4 v) {
  return make_float4(f(b, c, v.x), f(b, c + 1, v.y), f(b, c + 2, v.z), f(b, c + 3, v.w));
}

// f(b, c, v, w) for the four channels of two float4s at the same elements.
template <class F>
__device__ __forceinline__ float4 quad_map2(const F& f, int64_t b, int64_t c, float4 v, float4 w) {
  return make_float4(f(b, c, v.x, w.x), f(b, c + 1, v.y, w.y), f(b, c + 2, v.z, w.z), f(b, c + 3, v.w, w.w));
}

// One warp (lane: its lane) folds group (b, g)'s channel sums in a fixed order: lane l takes
// channels l, l + 32, ... of the group, then the xor tree. Shared by the two-pass kernels below and
// the per-group ones (group_norm_per_group.cuh), so both give the same bits from the same sums.
// From sums = [sum x | sum x^2] (2 x [B, C]): mean and rstd of (b, g), float for the caller and
// rstd also in double (the CPU scales by the unrounded rstd); lane 0 writes them.
static __device__ __forceinline__ void gn_fold_stats(const double* sums, int64_t b, int64_t g, int64_t B,
                                                     int64_t C, int64_t G, double n, double eps, int lane,
                                                     float* mean, float* rstd, double* rstd_d) {
  const int64_t D = C / G, BC = B * C, bg = b * G + g;
  double s = 0.0, q = 0.0;
  for (int64_t c = g * D + lane; c < (g + 1) * D; c += 32) {
    s += sums[b * C + c];
    q += sums[BC + b * C + c];
  }
  s = warp_fold(s);
  q = warp_fold(q);
  if (lane == 0) {
    const double m = s / n;
    const double var = fmax(q / n - m * m, 0.0);  // biased, as nn.GroupNorm
    const double r = 1.0 / sqrt(var + eps);
    mean[bg] = static_cast<float>(m);
    rstd[bg] = static_cast<float>(r);
    rstd_d[bg] = r;
  }
}

static __global__ void gn_stats_kernel(const double* sums, int64_t B, int64_t C, int64_t G, double n, double eps,
                                       float* mean, float* rstd, double* rstd_d) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  DD_WARP_STRIDE(bg, B * G) { gn_fold_stats(sums, bg / G, bg % G, B, C, G, n, eps, lane, mean, rstd, rstd_d); }
}

inline void gn_stats(const double* sums, const GnDims& d, float eps, float* mean, float* rstd, double* rstd_d) {
  gn_stats_kernel<<<grid_for(d.B * d.G * 32), kThreads, 0, stream()>>>(sums, d.B, d.C, d.G, d.group_size(),
                                                                  static_cast<double>(eps), mean, rstd, rstd_d);
  DD_CUDA_LAUNCH_CHECK("gn_stats_kernel");
}

// With sdx[b, c] = sum_s dh (x - mean) and sdy[b, c] = sum_s dh (dh: the
// gradient reaching the normalized output), per (b, g):
//   dx = (rstd gamma) dh - k (x - mean) - o,  k = rstd^3 sum_c(gamma sdx) / n,  o = rstd sum_c(gamma sdy) / n.
// One warp, as gn_fold_stats; lane 0 writes kk and oo of (b, g).
static __device__ __forceinline__ void gn_fold_coeffs(const double* sdx, const double* sdy, const float* gamma,
                                                      const float* rstd, int64_t b, int64_t g, int64_t C, int64_t G,
                                                      double n, int lane, float* kk, float* oo) {
  const int64_t D = C / G, bg = b * G + g;
  double s1 = 0.0, s2 = 0.0;
  for (int64_t c = g * D + lane; c < (g + 1) * D; c += 32) {
    s1 += gamma[c] * sdy[b * C + c];
    s2 += gamma[c] * sdx[b * C + c];
  }
  s1 = warp_fold(s1);
  s2 = warp_fold(s2);
  if (lane == 0) {
    const double r = rstd[bg];
    kk[bg] = static_cast<float>(r * r * r * s2 / n);
    oo[bg] = static_cast<float>(r * s1 / n);
  }
}

static __global__ void gn_backward_coeffs_kernel(const double* sdx, const double* sdy, const float* gamma,
                                                 const float* rstd, int64_t B, int64_t C, int64_t G, double n,
                                                 float* kk, float* oo) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  DD_WARP_STRIDE(bg, B * G) { gn_fold_coeffs(sdx, sdy, gamma, rstd, bg / G, bg % G, C, G, n, lane, kk, oo); }
}

// dgamma[c] = sum_b sdx[b, c] rstd[b, g(c)], dbeta[c] = sum_b sdy[b, c]: a warp per channel.
static __global__ void gn_affine_grads_kernel(const double* sdx, const double* sdy, const float* rstd, int64_t B,
                                              int64_t C, int64_t G, float* dgamma, float* dbeta) {
  const int64_t D = C / G;
  const int lane = static_cast<int>(threadIdx.x % 32);
  DD_WARP_STRIDE(c, C) {
    double sg = 0.0, sb = 0.0;
    for (int64_t b = lane; b < B; b += 32) {
      sg += sdx[b * C + c] * rstd[b * G + c / D];
      sb += sdy[b * C + c];
    }
    sg = warp_fold(sg);
    sb = warp_fold(sb);
    if (lane == 0) {
      dgamma[c] = static_cast<float>(sg);
      dbeta[c] = static_cast<float>(sb);
    }
  }
}

inline void gn_backward_tail(const double* sdx, const double* sdy, const float* gamma, const float* rstd,
                             const GnDims& d, float* dgamma, float* dbeta, float* kk, float* oo) {
  gn_backward_coeffs_kernel<<<grid_for(d.B * d.G * 32), kThreads, 0, stream()>>>(sdx, sdy, gamma, rstd, d.B, d.C, d.G,
                                                                            d.group_size(), kk, oo);
  DD_CUDA_LAUNCH_CHECK("gn_backward_coeffs_kernel");
  gn_affine_grads_kernel<<<grid_for(d.C * 32), kThreads, 0, stream()>>>(sdx, sdy, rstd, d.B, d.C, d.G, dgamma, dbeta);
  DD_CUDA_LAUNCH_CHECK("gn_affine_grads_kernel");
}

}  // namespace dd::kernels::cuda
