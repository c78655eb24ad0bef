#pragma once
// A forward tensor-core convolution that reads each input element about once per block instead of
// once per tap (TcConvOptions::halo; forward and dx, K >= 2; kernels/cuda/conv2d_tc.cu launches it).
//
// The implicit GEMM of conv2d_tc.cu gathers its A tile (pixels x reduction) tap by tap from L2, so
// a 3x3 conv reads x nine times: for the 64-channel convs at 32x32 the operands' traffic, not the
// tensor cores, bounds it (4.5x cuDNN's time for dw, 1.3x for the forward on the H200). Here a
// block owns an 8x16 patch of one image's output (128 GEMM rows) and 64 output channels; for each
// chunk of kBK input channels it loads the patch's halo, (8 + K - 1) x (16 + K - 1) pixels, once,
// and runs the K*K taps as K*K pipeline stages whose A fragments come from the halo at the tap's
// offset (ldmatrix takes one row address per lane, so the shifted window needs no copy) and whose
// B tiles are the tap's weight slice [64 x kBK], three stages deep. The halo is double-buffered:
// chunk c + 1's loads start while chunk c's last taps run. Reduction order: chunk by chunk, taps
// in order within a chunk, mma k order within a stage: fixed, so results repeat bitwise, but not
// the bits of the other tiles (whose order is tap-major), and within the same derived bounds.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/conv2d_tc_sums.cuh"
#include "kernels/cuda/conv2d_tc_tiles.cuh"
#include "kernels/cuda/conv2d_tiles.cuh"

namespace dd::kernels::cuda::conv_tc {

struct Halo {
  static constexpr int TH = 8, TW = 16;  // output patch of a block: BM = 128 GEMM rows
  using Tile = Tile128x64_64x32_S3;      // 4 warps of 64x32, BN = 64, 3 weight stages
  // TcConvOptions::halo_wide: 128 channels a block (8 warps of 64x32), each halo loaded read by
  // twice the output channels where Co (dx: Ci) > 64; picked by no rule, only --conv-autotune.
  using WideTile = Tile128x128_64x32_S3;
  static_assert(Tile::BM == TH * TW && WideTile::BM == TH * TW, "one GEMM row per patch pixel");
  static_assert(TW == 16, "an mma's 16 rows are one patch row: consecutive halo pixels");
};

// Bytes of shared memory of one launch: two halo buffers and the weight stages.
template <class Op, class Tile = Halo::Tile>
int halo_smem_bytes(int k) {
  constexpr int ld = Op::kBK + Op::kRowPad;
  const int halo_rows = (Halo::TH + k - 1) * (Halo::TW + k - 1);
  return (2 * halo_rows + Tile::kStages * Tile::BN) * ld * static_cast<int>(sizeof(typename Op::T));
}

// A (16 x kMmaK) of the rows r0..r0+15 of the patch (one patch row: r0 is a multiple of 16) at tap
// (kh, kw), from the halo tile h[pixel][k] with hc halo columns.
template <class Op>
__device__ __forceinline__ void load_a_halo(const typename Op::T* h, int ld, int hc, int r0, int kh, int kw, int k0,
                                            int lane, uint32_t (&a)[4]) {
  auto row = [&](int r) { return (r / Halo::TW + kh) * hc + r % Halo::TW + kw; };
  if constexpr (Op::kChunk == 8) {
    warp::ldmatrix_x4(a, h + row(r0 + (lane & 15)) * ld + k0 + ((lane >> 4) << 3));
  } else {
    const int g = lane >> 2, c = lane & 3;
    const int lo = row(r0 + g) * ld + k0 + c, hi = row(r0 + g + 8) * ld + k0 + c;
    a[0] = warp::f32_to_tf32(h[lo]);
    a[1] = warp::f32_to_tf32(h[hi]);
    a[2] = warp::f32_to_tf32(h[lo + 4]);
    a[3] = warp::f32_to_tf32(h[hi + 4]);
  }
}

// y[m, n] = sum over taps and channels of x[halo pixel] w[n, tap, c] (+ bias[n]); x [B, H, W, g.c]
// and w [N, Kd = K*K*g.c] packed as for conv_tc_fprop_kernel (g.c a multiple of kChunk). Block
// (blockIdx.x = (b * tiles_h + th) * tiles_w + tw, blockIdx.y): patch (th, tw) of image b,
// channels Tile::BN blockIdx.y ...
// kSums: also part[k][blockIdx.x][n] = sum of y[m, n] (k = 0) or y[m, n]^2 (k = 1) over the
// patch's pixels inside the output (one image a block: fold_halo_sums_kernel folds an image's).
template <class Op, class Tile = Halo::Tile, bool kSums = false>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    conv_tc_halo_fprop_kernel(const typename Op::T* __restrict__ x, const typename Op::T* __restrict__ w,
                              const float* __restrict__ bias, YOut y, conv::Geom g, int N, int Kd,
                              int tiles_h, int tiles_w, double* __restrict__ part) {
  using T = typename Op::T;
  constexpr int BN = Tile::BN, BK = Op::kBK, kC = Op::kChunk, S = Tile::kStages, kT = Tile::kThreads;
  constexpr int ld = BK + Op::kRowPad, kCpr = BK / kC;
  extern __shared__ __align__(16) unsigned char smem[];
  const int hc = Halo::TW + g.k - 1, hrows = (Halo::TH + g.k - 1) * hc;
  T* const Hs = reinterpret_cast<T*>(smem);  // [2][hrows][ld]
  T* const Ws = Hs + 2 * hrows * ld;          // [S][BN][ld]

  const int tid = threadIdx.x;
  const int tw = blockIdx.x % tiles_w, th = blockIdx.x / tiles_w % tiles_h, b = blockIdx.x / tiles_w / tiles_h;
  const int oh0 = th * Halo::TH, ow0 = tw * Halo::TW, n0 = blockIdx.y * BN;
  const int taps = g.k * g.k, chunks = (g.c + BK - 1) / BK, steps = chunks * taps;
  const T* const image = x + int64_t(b) * g.h * g.w * g.c;

  // Halo pixel (hr, hcol) is input (oh0 - p + hr, ow0 - p + hcol); outside the image, or past the
  // channels, a zero-filled chunk.
  auto load_halo = [&](int buf, int chunk) {
    T* const dst = Hs + buf * hrows * ld;
    const int c0 = chunk * BK;
    for (int i = tid; i < hrows * kCpr; i += kT) {
      const int r = i / kCpr, col = i - r * kCpr;
      const int ih = oh0 - g.p + r / hc, iw = ow0 - g.p + r % hc, ci = c0 + col * kC;
      const bool ok = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w && ci < g.c;
      warp::cp_async_16_pred(dst + r * ld + col * kC, ok ? image + (int64_t(ih) * g.w + iw) * g.c + ci : x, ok);
    }
  };
  // Step s = chunk * taps + tap: w[n0 .. n0 + 63][tap * g.c + chunk * BK ..] into stage s % S.
  auto load_w = [&](int s) {
    const int chunk = s / taps, tap = s - chunk * taps;
    T* const dst = Ws + (s % S) * BN * ld;
#pragma unroll
    for (int i = tid; i < BN * kCpr; i += kT) {
      const int r = i / kCpr, col = i - r * kCpr;
      const int ci = chunk * BK + col * kC;
      const bool ok = n0 + r < N && ci < g.c;
      warp::cp_async_16_pred(dst + r * ld + col * kC, ok ? w + int64_t(n0 + r) * Kd + tap * g.c + ci : w, ok);
    }
  };
  // One commit group per step (possibly empty); a chunk's halo travels with its first tap's
  // weights. Its buffer, (chunk % 2), was last read by chunk - 2, which ended at least S - 1 steps
  // before this issue since taps >= S - 1 (K >= 2): every thread is past it (the loop's barrier).
  auto issue = [&](int s) {
    if (s < steps) {
      if (s % taps == 0) load_halo((s / taps) % 2, s / taps);
      load_w(s);
    }
    warp::cp_async_commit();
  };

  const int warp_id = tid / 32, lane = tid % 32;
  const int wr = (warp_id / Tile::kWarpsN) * Tile::WM, wc = (warp_id % Tile::kWarpsN) * Tile::WN;
  float acc[Tile::MI][Tile::NI][4] = {};
#pragma unroll
  for (int s = 0; s < S - 1; ++s) issue(s);
  for (int s = 0; s < steps; ++s) {
    warp::cp_async_wait<S - 2>();
    __syncthreads();  // step s landed for all; everyone is done with step s - 1's stage
    issue(s + S - 1);
    const int chunk = s / taps, tap = s - chunk * taps, kh = tap / g.k, kw = tap - kh * g.k;
    const T* const hs = Hs + (chunk % 2) * hrows * ld;
    const T* const ws = Ws + (s % S) * BN * ld;
#pragma unroll
    for (int ks = 0; ks < BK; ks += Op::kMmaK) {
      uint32_t a[Tile::MI][4], bf[Tile::NI][2];
#pragma unroll
      for (int mi = 0; mi < Tile::MI; ++mi) load_a_halo<Op>(hs, ld, hc, wr + 16 * mi, kh, kw, ks, lane, a[mi]);
#pragma unroll
      for (int nj = 0; nj < Tile::NI; nj += 2) load_b_row<Op>(ws, ld, wc + 8 * nj, ks, lane, bf[nj], bf[nj + 1]);
#pragma unroll
      for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < Tile::NI; ++ni) mma<Op>(acc[mi][ni], a[mi], bf[ni]);
    }
  }
  warp::cp_async_wait<0>();

  // As conv_tc_fprop_kernel's epilogue, rows mapped back to the patch's pixels.
  const int gq = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wr + 16 * mi + gq + 8 * h, oh = oh0 + r / Halo::TW, ow = ow0 + r % Halo::TW;
      if (oh >= g.ho || ow >= g.wo) continue;
      const int64_t m = (int64_t(b) * g.ho + oh) * g.wo + ow;
#pragma unroll
      for (int ni = 0; ni < Tile::NI; ++ni)
        store_pair(y, m, n0 + wc + 8 * ni + 2 * tq, N, bias, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
    }
  if constexpr (kSums) {
    __syncthreads();  // every warp is done with the halo and weight stages: their memory is free
    tc_sums_rows<Tile>(acc, bias, reinterpret_cast<double*>(smem), part + int64_t(blockIdx.x) * N + n0,
                       int64_t(gridDim.x) * N, n0, N, wr, wc, tid, [&](int r) {
                         return oh0 + r / Halo::TW < g.ho && ow0 + r % Halo::TW < g.wo;
                       });
  }
}

}  // namespace dd::kernels::cuda::conv_tc
