#pragma once
// The per-(batch, group) and per-channel steps that GroupNorm and the fused
// GroupNorm->scale/shift->SiLU op share. They follow kernels/cpu/group_norm.cpp
// step for step (double sums per (b, c), then per group in channel order), so
// the CUDA results differ from the CPU only by the order of the position sums.
#include <cstdint>

#include "engine/tensor.h"
#include "kernels/cuda/channel_sums.cuh"

namespace dd::kernels::cuda {

// x viewed as [B, S, C] with C = G groups of D channels.
struct GnDims {
  int64_t B, S, C, G, D;
  GnDims(const Tensor& x, int64_t groups)
      : B(x.dim(0)), S(x.numel() / (x.dim(0) * x.dim(-1))), C(x.dim(-1)), G(groups), D(x.dim(-1) / groups) {}
  int64_t numel() const { return B * S * C; }
  double group_size() const { return static_cast<double>(S * D); }
};

// From sums = [sum x | sum x^2] (2 x [B, C]): mean and rstd per (b, g), float
// for the caller and rstd also in double (the CPU scales by the unrounded rstd).
static __global__ void gn_stats_kernel(const double* sums, int64_t B, int64_t C, int64_t G, double n, double eps,
                                       float* mean, float* rstd, double* rstd_d) {
  const int64_t D = C / G, BC = B * C;
  DD_GRID_STRIDE(bg, B * G) {
    const int64_t b = bg / G, g = bg % G;
    double s = 0.0, q = 0.0;
    for (int64_t c = g * D; c < (g + 1) * D; ++c) {
      s += sums[b * C + c];
      q += sums[BC + b * C + c];
    }
    const double m = s / n;
    const double var = fmax(q / n - m * m, 0.0);  // biased, as nn.GroupNorm
    const double r = 1.0 / sqrt(var + eps);
    mean[bg] = static_cast<float>(m);
    rstd[bg] = static_cast<float>(r);
    rstd_d[bg] = r;
  }
}

inline void gn_stats(const double* sums, const GnDims& d, float eps, float* mean, float* rstd, double* rstd_d) {
  gn_stats_kernel<<<grid_for(d.B * d.G), kThreads, 0, stream()>>>(sums, d.B, d.C, d.G, d.group_size(),
                                                                  static_cast<double>(eps), mean, rstd, rstd_d);
  DD_CUDA_LAUNCH_CHECK("gn_stats_kernel");
}

// With sdx[b, c] = sum_s dh (x - mean) and sdy[b, c] = sum_s dh (dh: the
// gradient reaching the normalized output), per (b, g):
//   dx = (rstd gamma) dh - k (x - mean) - o,  k = rstd^3 sum_c(gamma sdx) / n,  o = rstd sum_c(gamma sdy) / n.
static __global__ void gn_backward_coeffs_kernel(const double* sdx, const double* sdy, const float* gamma,
                                                 const float* rstd, int64_t B, int64_t C, int64_t G, double n,
                                                 float* kk, float* oo) {
  const int64_t D = C / G;
  DD_GRID_STRIDE(bg, B * G) {
    const int64_t b = bg / G, g = bg % G;
    double s1 = 0.0, s2 = 0.0;
    for (int64_t c = g * D; c < (g + 1) * D; ++c) {
      s1 += gamma[c] * sdy[b * C + c];
      s2 += gamma[c] * sdx[b * C + c];
    }
    const double r = rstd[bg];
    kk[bg] = static_cast<float>(r * r * r * s2 / n);
    oo[bg] = static_cast<float>(r * s1 / n);
  }
}

// dgamma[c] = sum_b sdx[b, c] rstd[b, g(c)], dbeta[c] = sum_b sdy[b, c], b in order.
static __global__ void gn_affine_grads_kernel(const double* sdx, const double* sdy, const float* rstd, int64_t B,
                                              int64_t C, int64_t G, float* dgamma, float* dbeta) {
  const int64_t D = C / G;
  DD_GRID_STRIDE(c, C) {
    double sg = 0.0, sb = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      sg += sdx[b * C + c] * rstd[b * G + c / D];
      sb += sdy[b * C + c];
    }
    dgamma[c] = static_cast<float>(sg);
    dbeta[c] = static_cast<float>(sb);
  }
}

inline void gn_backward_tail(const double* sdx, const double* sdy, const float* gamma, const float* rstd,
                             const GnDims& d, float* dgamma, float* dbeta, float* kk, float* oo) {
  gn_backward_coeffs_kernel<<<grid_for(d.B * d.G), kThreads, 0, stream()>>>(sdx, sdy, gamma, rstd, d.B, d.C, d.G,
                                                                            d.group_size(), kk, oo);
  DD_CUDA_LAUNCH_CHECK("gn_backward_coeffs_kernel");
  gn_affine_grads_kernel<<<grid_for(d.C), kThreads, 0, stream()>>>(sdx, sdy, rstd, d.B, d.C, d.G, dgamma, dbeta);
  DD_CUDA_LAUNCH_CHECK("gn_affine_grads_kernel");
}

}  // namespace dd::kernels::cuda
