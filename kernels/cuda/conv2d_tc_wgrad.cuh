#pragma once
// The weight gradient of the tensor-core convolutions (kernels/cuda/conv2d_tc.cu launches it):
//   dw[co, kk] = sum_m dy[m, co] im2col(x)[m, kk], split over the pixels m, the splits' partials
//   folded in split order (results repeat bitwise for a given split).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/conv2d_tc_tiles.cuh"
#include "kernels/cuda/conv2d_tiles.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda::conv_tc {

// out[split][co][tap * Ci + c] = sum over the split's pixels m of dy[m, co] x[pixel m's tap, c]:
// GEMM rows co (dy [M, Cop]), columns kk = tap * g.c + c (x [B, H, W, g.c]), reduction over
// pixels, kBK per stage. Both operands are contiguous along their GEMM row / column, so both
// tiles are k-major. Thread tid loads a fixed chunk column of each tile (the tap of its x chunk
// is decomposed once) for every few pixel rows, whose (b, oh, ow) advance by kBK per stage.
template <class Op, class Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    conv_tc_wgrad_kernel(const typename Op::T* __restrict__ x, const typename Op::T* __restrict__ dy,
                         float* __restrict__ out, conv::Geom g, int M, int Cop, int Co, int Kd, int Ci,
                         int pixels_per_split) {
  using T = typename Op::T;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Op::kBK, kC = Op::kChunk, S = Tile::kStages;
  constexpr int lda = BM + Op::kColPad, ldb = BN + Op::kColPad;
  constexpr int kCprA = BM / kC, kCprB = BN / kC;
  static_assert(Tile::kThreads % kCprA == 0 && Tile::kThreads % kCprB == 0, "loader mapping");
  constexpr int kRppA = Tile::kThreads / kCprA, kRppB = Tile::kThreads / kCprB;
  constexpr int kAPasses = (BK + kRppA - 1) / kRppA, kBPasses = (BK + kRppB - 1) / kRppB;
  extern __shared__ __align__(16) unsigned char smem[];
  T* const As = reinterpret_cast<T*>(smem);
  T* const Bs = As + S * BK * lda;

  const int tid = threadIdx.x;
  const int co0 = blockIdx.x * BM, kk0 = blockIdx.y * BN, split = blockIdx.z;
  const int m_begin = split * pixels_per_split;  // < M: the host leaves no split empty
  const int m_end = static_cast<int>(min(int64_t(M), int64_t(m_begin) + pixels_per_split));

  const int acol = tid % kCprA, arow = tid / kCprA, bcol = tid % kCprB, brow = tid / kCprB;
  const int co = co0 + acol * kC, kk = kk0 + bcol * kC;
  const bool co_ok = co < Cop, kk_ok = kk < Kd;
  const int tap = kk / g.c, ci = kk - tap * g.c;
  const int kh = tap / g.k, kw = tap - kh * g.k;

  conv::PixelCursor cur[kBPasses];  // pixel of B row brow + kRppB i of the next load
#pragma unroll
  for (int i = 0; i < kBPasses; ++i) cur[i] = conv::pixel_cursor(g, min(m_begin + brow + kRppB * i, M - 1));

  auto load = [&](int stage, int mb) {
    T* const as = As + stage * BK * lda + acol * kC;
    T* const bs = Bs + stage * BK * ldb + bcol * kC;
#pragma unroll
    for (int i = 0; i < kAPasses; ++i) {
      const int r = arow + kRppA * i;
      if (r >= BK) break;
      const bool ok = co_ok && mb + r < m_end;
      warp::cp_async_16_pred(as + r * lda, ok ? dy + int64_t(mb + r) * Cop + co : dy, ok);
    }
#pragma unroll
    for (int i = 0; i < kBPasses; ++i) {
      const int r = brow + kRppB * i;
      if (r >= BK) break;
      const int ih = cur[i].oh - g.p + kh, iw = cur[i].ow - g.p + kw;
      const bool ok = kk_ok && mb + r < m_end && ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
      const T* src = ok ? x + ((int64_t(cur[i].b) * g.h + ih) * g.w + iw) * g.c + ci : x;
      warp::cp_async_16_pred(bs + r * ldb, src, ok);
      cur[i].advance(g, BK);
    }
  };

  const int warp_id = tid / 32, lane = tid % 32;
  const int wr = (warp_id / Tile::kWarpsN) * Tile::WM, wc = (warp_id % Tile::kWarpsN) * Tile::WN;
  float acc[Tile::MI][Tile::NI][4] = {};

  const int KT = (m_end - m_begin + BK - 1) / BK;
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < KT) load(s, m_begin + s * BK);
    warp::cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    warp::cp_async_wait<S - 2>();
    __syncthreads();
    const int next = kt + S - 1;
    if (next < KT) load(next % S, m_begin + next * BK);
    warp::cp_async_commit();
    const int st = kt % S;
    warp_stage_product<Op, Tile, true, true>(As + st * BK * lda, lda, Bs + st * BK * ldb, ldb, wr, wc, lane, acc);
  }
  warp::cp_async_wait<0>();

  const int kd_out = g.k * g.k * Ci;
  float* const dst = out + int64_t(split) * Co * kd_out;
  const int gq = lane >> 2, tq = lane & 3;
  // A lane's column pair (col, col + 1), col even, lies in one tap (g.c is even). With Ci even
  // both columns are inside Ci or both outside, and dst + r * kd_out + t * Ci + c is 8-byte
  // aligned: one float2 store, a warp writing 32 whole bytes per row instead of every other word.
  const bool pairs = (Ci & 1) == 0;
#pragma unroll
  for (int ni = 0; ni < Tile::NI; ++ni) {
    const int col = kk0 + wc + 8 * ni + 2 * tq;
    const int t = col / g.c, c = col - t * g.c;
    if (col >= Kd || c >= Ci) continue;  // the reduction's zero padding of x's channels
#pragma unroll
    for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = co0 + wr + 16 * mi + gq + 8 * h;
        if (r >= Co) continue;
        float* const d = dst + int64_t(r) * kd_out + t * Ci + c;
        if (pairs) {
          *reinterpret_cast<float2*>(d) = make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
        } else {
          d[0] = acc[mi][ni][2 * h];
          if (c + 1 < Ci) d[1] = acc[mi][ni][2 * h + 1];
        }
      }
  }
}

// out[i] = sum_{s < splits} partial[s * n + i], in s order.
static __global__ void fold_tc_splits_kernel(const float* __restrict__ partial, int splits, int64_t n,
                                      float* __restrict__ out) {
  DD_GRID_STRIDE(i, n) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k) s += partial[int64_t(k) * n + i];
    out[i] = s;
  }
}

}  // namespace dd::kernels::cuda::conv_tc
