#pragma once
// GroupNorm (plain, and fused with scale/shift/SiLU) a block per (batch, group), forward and
// backward. The two-pass paths they replace by default (channel_sums' partials and fold, the
// statistics or coefficients, the affine gradients' conversions, then the elementwise pass: 4-7
// launches, x (and dy) read twice from memory) ran at 7.5-35% of the copy bandwidth on an H200
// (341f76a). Here one kernel does, for its group:
//   1. the group's K per-channel sums over the positions (channel lanes x position rows, the rows
//      folded in row order: the same order whatever the GPU) into sums (K x [B, C] doubles, as
//      channel_sums writes them; the backward with scale/shift also dscale, dshift as floats);
//   2. warp 0 folds them into the group's statistics (forward: mean, rstd, as gn_stats_kernel) or
//      dx coefficients (backward: kk, oo, as gn_backward_coeffs_kernel): same lanes, same xor tree;
//   3. the elementwise pass over the group's elements, reading x (and dy) again: the block read
//      them moments before, so mostly from L2.
// The backward's gradients of gamma and beta sum over the batch: gn_affine_grads_kernel, after.
// Results repeat bitwise run to run; they differ from the two-pass paths' only in the order of
// the double position sums, rounded once to float.
#include <cstdint>

#include "kernels/cuda/group_norm_common.cuh"

namespace dd::kernels::cuda {

constexpr int kGnGroupThreads = 256;

// Step 1: acc terms of the group's channels, K per channel, into sums[k * B*C + b*C + c] (and,
// where dscale / dshift are given, sums 2 and 3 as floats). Ends with a barrier.
template <int K, class Term>
__device__ __forceinline__ void gn_group_sums(const Term& term, int64_t b, int64_t g, int64_t B, int64_t S,
                                              int64_t C, int64_t G, double* sums, float* dscale, float* dshift,
                                              double (&red)[K][kGnGroupThreads]) {
  const int64_t D = C / G, BC = B * C;
  const int tid = static_cast<int>(threadIdx.x);
  // Channel lanes x position rows: a warp reads 32 consecutive channels of one position, or whole
  // groups of fewer channels at 32 / D consecutive positions.
  const int tx_n = D < 32 ? static_cast<int>(D) : 32, ty_n = kGnGroupThreads / tx_n;
  const int tx = tid % tx_n, ty = tid / tx_n;
  for (int64_t c0 = 0; c0 < D; c0 += tx_n) {
    const int64_t cl = c0 + tx, c = g * D + cl;
    double acc[K];
#pragma unroll
    for (int k = 0; k < K; ++k) acc[k] = 0.0;
    if (ty < ty_n && cl < D) {
#pragma unroll 4
      for (int64_t s = ty; s < S; s += ty_n) term(b, c, (b * S + s) * C + c, acc);
    }
    __syncthreads();  // the previous chunk's fold is done with red
#pragma unroll
    for (int k = 0; k < K; ++k) red[k][tid] = acc[k];
    __syncthreads();
    if (ty == 0 && cl < D) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        double t = 0.0;
        for (int y = 0; y < ty_n; ++y) t += red[k][y * tx_n + tx];
        sums[k * BC + b * C + c] = t;
        if (K == 4 && k == 2 && dscale) dscale[b * C + c] = static_cast<float>(t);
        if (K == 4 && k == 3 && dshift) dshift[b * C + c] = static_cast<float>(t);
      }
    }
  }
  __syncthreads();  // every channel's sums are written
}

// Forward: y = f(b, c, x) over the group (f: Normalize, or the fused op's Forward, reading mean
// and rstd_d at (b, g)), and xb (unless null) x's bf16 copy, as the two-pass forward writes them.
template <class Term, class F>
__global__ void __launch_bounds__(kGnGroupThreads) gn_group_forward_kernel(Term term, F f, const float* x,
                                                                           int64_t B, int64_t S, int64_t C,
                                                                           int64_t G, double n, double eps,
                                                                           double* sums, float* mean, float* rstd,
                                                                           double* rstd_d, float* y, bf16* xb,
                                                                           bool quad) {
  const int64_t bg = blockIdx.x, b = bg / G, g = bg % G, D = C / G, BC = B * C;
  const int tid = static_cast<int>(threadIdx.x);
  __shared__ double red[2][kGnGroupThreads];
  gn_group_sums<2>(term, b, g, B, S, C, G, sums, nullptr, nullptr, red);
  if (tid < 32) {  // as gn_stats_kernel
    double s = 0.0, q = 0.0;
    for (int64_t c = g * D + tid; c < (g + 1) * D; c += 32) {
      s += sums[b * C + c];
      q += sums[BC + b * C + c];
    }
    s = warp_fold(s);
    q = warp_fold(q);
    if (tid == 0) {
      const double m = s / n;
      const double var = fmax(q / n - m * m, 0.0);  // biased, as nn.GroupNorm
      const double r = 1.0 / sqrt(var + eps);
      mean[bg] = static_cast<float>(m);
      rstd[bg] = static_cast<float>(r);
      rstd_d[bg] = r;
    }
  }
  __syncthreads();  // the statistics are written
  const int64_t base = b * S * C + g * D;
  if (quad) {  // D % 4 == 0, C % 4 == 0, 16-byte aligned: four channels at a time
    const int64_t dq = D / 4;
    for (int64_t q = tid; q < S * dq; q += kGnGroupThreads) {
      const int64_t cl = 4 * (q % dq), i = base + (q / dq) * C + cl;
      const float4 v = reinterpret_cast<const float4*>(x)[i / 4];
      reinterpret_cast<float4*>(y)[i / 4] = quad_map(f, b, g * D + cl, v);
      if (xb) reinterpret_cast<uint2*>(xb)[i / 4] = bf16_quad(v);
    }
  } else {
    for (int64_t e = tid; e < S * D; e += kGnGroupThreads) {
      const int64_t cl = e % D, i = base + (e / D) * C + cl;
      y[i] = f(b, g * D + cl, x[i]);
      if (xb) xb[i] = bf16{dtype_conv::f32_to_bf16(x[i])};
    }
  }
}

// The whole forward: sums (2 x [B, C] doubles) and rstd_d ([B, G]) are scratch the caller owns.
template <class Term, class F>
void gn_group_forward(const Term& term, const F& f, const float* x, const GnDims& d, float eps, double* sums,
                      float* mean, float* rstd, double* rstd_d, float* y, bf16* xb) {
  if (d.B * d.C == 0) return;
  const int64_t blocks = d.B * d.G;
  DD_CHECK(blocks <= 0x7fffffff, "group_norm: B x groups = ", blocks, " exceeds the grid limit");
  const bool quad = d.D % 4 == 0 && quad_ok(d.C, {x, y, xb});
  gn_group_forward_kernel<Term, F><<<static_cast<unsigned>(blocks), kGnGroupThreads, 0, stream()>>>(
      term, f, x, d.B, d.S, d.C, d.G, d.group_size(), static_cast<double>(eps), sums, mean, rstd, rstd_d, y, xb,
      quad);
  DD_CUDA_LAUNCH_CHECK("gn_group_forward_kernel");
}

// term(b, c, i, acc) adds element i's K terms (acc[0] = dh (x - mean), acc[1] = dh, and with
// K = 4 the scale/shift gradient terms); dxf(b, c, x, dy) is dx at one element, reading kk and oo.
template <int K, typename XT, class Term, class DxF>
__global__ void __launch_bounds__(kGnGroupThreads) gn_group_backward_kernel(Term term, DxF dxf, const XT* x,
                                                                            const float* dy, const float* gamma,
                                                                            const float* rstd, int64_t B, int64_t S,
                                                                            int64_t C, int64_t G, double n,
                                                                            double* sums, float* kk, float* oo,
                                                                            float* dscale, float* dshift,
                                                                            float* dx, bool quad) {
  const int64_t bg = blockIdx.x, b = bg / G, g = bg % G, D = C / G, BC = B * C;
  const int tid = static_cast<int>(threadIdx.x);
  __shared__ double red[K][kGnGroupThreads];
  gn_group_sums<K>(term, b, g, B, S, C, G, sums, dscale, dshift, red);
  if (tid < 32) {
    const double* sdx = sums;
    const double* sdy = sums + BC;
    double s1 = 0.0, s2 = 0.0;
    for (int64_t c = g * D + tid; c < (g + 1) * D; c += 32) {
      s1 += gamma[c] * sdy[b * C + c];
      s2 += gamma[c] * sdx[b * C + c];
    }
    s1 = warp_fold(s1);
    s2 = warp_fold(s2);
    if (tid == 0) {
      const double r = rstd[bg];
      kk[bg] = static_cast<float>(r * r * r * s2 / n);
      oo[bg] = static_cast<float>(r * s1 / n);
    }
  }
  __syncthreads();  // kk, oo are written
  const int64_t base = b * S * C + g * D;
  if (quad) {  // D % 4 == 0, C % 4 == 0, 16-byte aligned: four channels at a time
    const int64_t dq = D / 4;
    for (int64_t q = tid; q < S * dq; q += kGnGroupThreads) {
      const int64_t s = q / dq, cl = 4 * (q % dq), i = base + s * C + cl;
      reinterpret_cast<float4*>(dx)[i / 4] =
          quad_map2(dxf, b, g * D + cl, load_quad(x, i / 4), reinterpret_cast<const float4*>(dy)[i / 4]);
    }
  } else {
    for (int64_t e = tid; e < S * D; e += kGnGroupThreads) {
      const int64_t s = e / D, cl = e % D, i = base + s * C + cl;
      dx[i] = dxf(b, g * D + cl, dtype_conv::to_f32(x[i]), dy[i]);
    }
  }
}

// The whole backward past the kernel above: sums (K x [B, C] doubles) and kk, oo ([B, G]) are
// scratch the caller owns; dgamma and dbeta come from gn_affine_grads_kernel.
template <int K, typename XT, class Term, class DxF>
void gn_group_backward(const Term& term, const DxF& dxf, const XT* x, const float* dy, const float* gamma,
                       const float* rstd, const GnDims& d, double* sums, float* kk, float* oo, float* dscale,
                       float* dshift, float* dx, float* dgamma, float* dbeta) {
  if (d.B * d.C == 0) return;
  const int64_t blocks = d.B * d.G;
  DD_CHECK(blocks <= 0x7fffffff, "group_norm backward: B x groups = ", blocks, " exceeds the grid limit");
  const bool quad = d.D % 4 == 0 && quad_ok(d.C, {x, dy, dx});
  gn_group_backward_kernel<K, XT, Term, DxF><<<static_cast<unsigned>(blocks), kGnGroupThreads, 0, stream()>>>(
      term, dxf, x, dy, gamma, rstd, d.B, d.S, d.C, d.G, d.group_size(), sums, kk, oo, dscale, dshift, dx, quad);
  DD_CUDA_LAUNCH_CHECK("gn_group_backward_kernel");
  gn_affine_grads_kernel<<<grid_for(d.C * 32), kThreads, 0, stream()>>>(sums, sums + d.B * d.C, rstd, d.B, d.C,
                                                                        d.G, dgamma, dbeta);
  DD_CUDA_LAUNCH_CHECK("gn_affine_grads_kernel");
}

}  // namespace dd::kernels::cuda
