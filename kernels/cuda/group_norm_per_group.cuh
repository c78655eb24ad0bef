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
//   3. the elementwise pass over the group's elements, reading x (and dy) again, last element
//      first: what the block read last is the likeliest still in L2 (at batch 128 a layer's x and
//      dy together pass an H100's 50 MB of L2, so not all of it is).
// The backward's gradients of gamma and beta sum over the batch: gn_affine_grads_kernel, after.
// Results repeat bitwise run to run; they differ from the two-pass paths' only in the order of
// the double position sums, rounded once to float.
#include <cstdint>

#include "kernels/cuda/group_norm_common.cuh"

namespace dd::kernels::cuda {

// Threads a block: 256 where the grid has blocks to spare; 1024 where B x G is below 256 (G = 1 at
// batch 128 is 128 blocks, fewer than two an SM): then each block's group is wide enough to feed them.
template <int kThreads>
constexpr bool kGnThreadsOk = kThreads == 256 || kThreads == 1024;
inline int gn_group_threads(int64_t blocks) { return blocks < 256 ? 1024 : 256; }

// The lanes' layout over a group of D channels at S positions: tx channel lanes x ty position rows,
// as many rows as there are positions (up to what 32-channel lanes leave), the rest channel lanes.
// A warp reads 32 consecutive channels of one position, or whole groups of fewer channels at
// consecutive positions.
struct GnLanes {
  int tx, ty;
  __device__ GnLanes(int64_t D, int64_t S, int threads) {
    const int64_t narrow = D < 32 ? D : 32;
    int64_t rows = threads / narrow;
    if (S < rows) rows = S > 0 ? S : 1;
    const int64_t wide = threads / rows;
    tx = static_cast<int>(D < wide ? D : wide);
    ty = threads / tx;
  }
};

// Step 1: acc terms of the group's channels, K per channel, into sums[k * B*C + b*C + c] (and,
// where dscale / dshift are given, sums 2 and 3 as floats). Ends with a barrier.
template <int K, int kThreads, class Term>
__device__ __forceinline__ void gn_group_sums(const Term& term, int64_t b, int64_t g, int64_t B, int64_t S,
                                              int64_t C, int64_t G, double* sums, float* dscale, float* dshift,
                                              double (&red)[K][kThreads]) {
  const int64_t D = C / G, BC = B * C;
  const int tid = static_cast<int>(threadIdx.x);
  const GnLanes l(D, S, kThreads);
  const int tx = tid % l.tx, ty = tid / l.tx;
  // Positions ty, ty + l.ty, ...: a trip count, so the unrolled loop keeps four loads in flight.
  const int64_t trips = ty < S ? (S - 1 - ty) / l.ty + 1 : 0;
  for (int64_t c0 = 0; c0 < D; c0 += l.tx) {
    const int64_t cl = c0 + tx, c = g * D + cl;
    double acc[K];
#pragma unroll
    for (int k = 0; k < K; ++k) acc[k] = 0.0;
    if (ty < l.ty && cl < D) {
      const int64_t i0 = (b * S + ty) * C + c, step = int64_t(l.ty) * C;
#pragma unroll 4
      for (int64_t t = 0; t < trips; ++t) term(b, c, i0 + t * step, acc);
    }
    __syncthreads();  // the previous chunk's fold is done with red
#pragma unroll
    for (int k = 0; k < K; ++k) red[k][tid] = acc[k];
    __syncthreads();
    if (ty == 0 && cl < D) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        double t = 0.0;
        for (int y = 0; y < l.ty; ++y) t += red[k][y * l.tx + tx];
        sums[k * BC + b * C + c] = t;
        if (K == 4 && k == 2 && dscale) dscale[b * C + c] = static_cast<float>(t);
        if (K == 4 && k == 3 && dshift) dshift[b * C + c] = static_cast<float>(t);
      }
    }
  }
  __syncthreads();  // every channel's sums are written
}

// Step 3: every element of group (b, g), last first (32-bit indices within the group: the host
// checks S * D). quad (D % 4 == 0, C % 4 == 0, 16-byte aligned): four channels at a time,
// on_quad(c, q) for channels c.. c+3 at float4 index q; else on_one(c, i) at element index i.
template <int kThreads, class OnQuad, class OnOne>
__device__ __forceinline__ void gn_group_elements(int64_t b, int64_t g, int64_t S, int64_t C, int64_t G, bool quad,
                                                  const OnQuad& on_quad, const OnOne& on_one) {
  const int64_t D = C / G, base = b * S * C + g * D;
  const int tid = static_cast<int>(threadIdx.x), Di = static_cast<int>(D), total = static_cast<int>(S * D);
  if (quad) {
    const int dq = Di / 4;
    for (int q = total / 4 - 1 - tid; q >= 0; q -= kThreads) {
      const int cl = 4 * (q % dq);
      on_quad(g * D + cl, (base + int64_t(q / dq) * C + cl) / 4);
    }
  } else {
    for (int e = total - 1 - tid; e >= 0; e -= kThreads) {
      const int cl = e % Di;
      on_one(g * D + cl, base + int64_t(e / Di) * C + cl);
    }
  }
}

// Forward: y = f(b, c, x) over the group (f: Normalize, or the fused op's Forward, reading mean
// and rstd_d at (b, g)), and xb (unless null) x's bf16 copy, as the two-pass forward writes them;
// y rounded to bf16 into yb instead when yb is set.
template <int kThreads, class Term, class F>
__global__ void __launch_bounds__(kThreads) gn_group_forward_kernel(Term term, F f, const float* x, int64_t B,
                                                                    int64_t S, int64_t C, int64_t G, double n,
                                                                    double eps, double* sums, float* mean,
                                                                    float* rstd, double* rstd_d, float* y, bf16* xb,
                                                                    bf16* yb, bool quad) {
  static_assert(kGnThreadsOk<kThreads>, "256 or 1024 threads");
  const int64_t bg = blockIdx.x, b = bg / G, g = bg % G;
  const int tid = static_cast<int>(threadIdx.x);
  __shared__ double red[2][kThreads];
  gn_group_sums<2, kThreads>(term, b, g, B, S, C, G, sums, nullptr, nullptr, red);
  if (tid < 32) gn_fold_stats(sums, b, g, B, C, G, n, eps, tid, mean, rstd, rstd_d);
  __syncthreads();  // the statistics are written
  gn_group_elements<kThreads>(b, g, S, C, G, quad, [&](int64_t c, int64_t q) {
    const float4 v = reinterpret_cast<const float4*>(x)[q];
    const float4 r = quad_map(f, b, c, v);
    if (yb)
      reinterpret_cast<uint2*>(yb)[q] = bf16_quad(r);
    else
      reinterpret_cast<float4*>(y)[q] = r;
    if (xb) reinterpret_cast<uint2*>(xb)[q] = bf16_quad(v);
  }, [&](int64_t c, int64_t i) {
    const float r = f(b, c, x[i]);
    if (yb)
      yb[i] = bf16{dtype_conv::f32_to_bf16(r)};
    else
      y[i] = r;
    if (xb) xb[i] = bf16{dtype_conv::f32_to_bf16(x[i])};
  });
}

inline void gn_group_check(const char* op, const GnDims& d) {
  DD_CHECK(d.B * d.G <= 0x7fffffff && d.S * d.D < (int64_t(1) << 31) && d.C < (int64_t(1) << 31), op,
           ": B x groups = ", d.B * d.G, ", positions x group channels = ", d.S * d.D,
           " exceed the per-group kernels' limits");
}

// The whole forward: sums (2 x [B, C] doubles) and rstd_d ([B, G]) are scratch the caller owns.
// y null and yb set: y in bf16.
template <class Term, class F>
void gn_group_forward(const Term& term, const F& f, const float* x, const GnDims& d, float eps, double* sums,
                      float* mean, float* rstd, double* rstd_d, float* y, bf16* xb, bf16* yb = nullptr) {
  if (d.B * d.C == 0) return;
  gn_group_check("group_norm", d);
  const auto blocks = static_cast<unsigned>(d.B * d.G);
  const bool quad = d.D % 4 == 0 && quad_ok(d.C, {x, y, xb, yb});
  if (gn_group_threads(d.B * d.G) == 1024) {
    gn_group_forward_kernel<1024, Term, F><<<blocks, 1024, 0, stream()>>>(
        term, f, x, d.B, d.S, d.C, d.G, d.group_size(), static_cast<double>(eps), sums, mean, rstd, rstd_d, y, xb,
        yb, quad);
  } else {
    gn_group_forward_kernel<256, Term, F><<<blocks, 256, 0, stream()>>>(
        term, f, x, d.B, d.S, d.C, d.G, d.group_size(), static_cast<double>(eps), sums, mean, rstd, rstd_d, y, xb,
        yb, quad);
  }
  DD_CUDA_LAUNCH_CHECK("gn_group_forward_kernel");
}

// Backward: term(b, c, i, acc) adds element i's K terms (acc[0] = dh (x - mean), acc[1] = dh, and
// with K = 4 the scale/shift gradient terms); dxf(b, c, x, dy) is dx at one element, reading kk
// and oo.
template <int K, int kThreads, typename XT, class Term, class DxF>
__global__ void __launch_bounds__(kThreads) gn_group_backward_kernel(Term term, DxF dxf, const XT* x,
                                                                     const float* dy, const float* gamma,
                                                                     const float* rstd, int64_t B, int64_t S,
                                                                     int64_t C, int64_t G, double n, double* sums,
                                                                     float* kk, float* oo, float* dscale,
                                                                     float* dshift, float* dx, bool quad) {
  static_assert(kGnThreadsOk<kThreads>, "256 or 1024 threads");
  const int64_t bg = blockIdx.x, b = bg / G, g = bg % G, BC = B * C;
  const int tid = static_cast<int>(threadIdx.x);
  // K = 4 at 1024 threads: 32 KB of the 48 KB of static shared memory.
  __shared__ double red[K][kThreads];
  gn_group_sums<K, kThreads>(term, b, g, B, S, C, G, sums, dscale, dshift, red);
  if (tid < 32) gn_fold_coeffs(sums, sums + BC, gamma, rstd, b, g, C, G, n, tid, kk, oo);
  __syncthreads();  // kk, oo are written
  gn_group_elements<kThreads>(b, g, S, C, G, quad, [&](int64_t c, int64_t q) {
    reinterpret_cast<float4*>(dx)[q] = quad_map2(dxf, b, c, load_quad(x, q), reinterpret_cast<const float4*>(dy)[q]);
  }, [&](int64_t c, int64_t i) { dx[i] = dxf(b, c, dtype_conv::to_f32(x[i]), dy[i]); });
}

// The whole backward past the kernel above: sums (K x [B, C] doubles) and kk, oo ([B, G]) are
// scratch the caller owns; dgamma and dbeta come from gn_affine_grads_kernel.
template <int K, typename XT, class Term, class DxF>
void gn_group_backward(const Term& term, const DxF& dxf, const XT* x, const float* dy, const float* gamma,
                       const float* rstd, const GnDims& d, double* sums, float* kk, float* oo, float* dscale,
                       float* dshift, float* dx, float* dgamma, float* dbeta) {
  if (d.B * d.C == 0) return;
  gn_group_check("group_norm backward", d);
  const auto blocks = static_cast<unsigned>(d.B * d.G);
  const bool quad = d.D % 4 == 0 && quad_ok(d.C, {x, dy, dx});
  if (gn_group_threads(d.B * d.G) == 1024) {
    gn_group_backward_kernel<K, 1024, XT, Term, DxF><<<blocks, 1024, 0, stream()>>>(
        term, dxf, x, dy, gamma, rstd, d.B, d.S, d.C, d.G, d.group_size(), sums, kk, oo, dscale, dshift, dx, quad);
  } else {
    gn_group_backward_kernel<K, 256, XT, Term, DxF><<<blocks, 256, 0, stream()>>>(
        term, dxf, x, dy, gamma, rstd, d.B, d.S, d.C, d.G, d.group_size(), sums, kk, oo, dscale, dshift, dx, quad);
  }
  DD_CUDA_LAUNCH_CHECK("gn_group_backward_kernel");
  gn_affine_grads_kernel<<<grid_for(d.C * 32), kThreads, 0, stream()>>>(sums, sums + d.B * d.C, rstd, d.B, d.C,
                                                                        d.G, dgamma, dbeta);
  DD_CUDA_LAUNCH_CHECK("gn_affine_grads_kernel");
}

}  // namespace dd::kernels::cuda
