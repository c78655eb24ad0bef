#pragma once
// The weight gradient of a 3x3 tensor-core convolution that reads each operand about once per
// block instead of once per tap (TcConvOptions::dw_halo; kernels/cuda/conv2d_tc.cu launches it).
//
// conv_tc_wgrad_kernel (conv2d_tc_wgrad.cuh) runs dw as one GEMM over the columns tap x Ci, so each
// of the nine taps' column blocks reads all of dy and all of x again: 18 passes over the operands
// for a 3x3 conv, and on the H200 its backward-weight took 3-7x cuDNN's time at every 3x3 shape
// (bench/RESULTS.md, 341f76a), the largest gap of the step. Here a block owns 64 output channels
// x 32 input channels x all nine taps, one warp per tap. Each pipeline stage loads a patch of 64
// output pixels of dy once, and the patch's input halo once; every warp then runs its tap's
// product from the same two tiles, its B fragments read from the halo at the tap's offset (one
// ldmatrix row address per lane, so the shifted window needs no copy). dy is read once and x
// about (patch + halo) / patch times per block instead of nine times.
//
// A patch is TI images x TH rows x TW columns of output pixels, all powers of two with
// TI*TH*TW = 64 (conv2d_tc.cu's wgrad_halo_geom): 4x16 at 32x32 and 16x16, a whole 8x8 map, four
// whole 4x4 maps. Its pixels outside the output (a partial patch, images past B) read a zero row
// of dy and a zero row of the halo, so they add exact zeros whatever x holds. The patches are
// split over blocks (the pixel reduction's split-K), the partials folded in split order by
// fold_tc_splits_kernel. Reduction order within a block: patch by patch, mma k order within a
// patch: fixed, so results repeat bitwise for a given split, within the bound of the tiled kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda/conv2d_tc_tiles.cuh"
#include "kernels/cuda/conv2d_tiles.cuh"

namespace dd::kernels::cuda::conv_tc {

struct WgradHalo {
  static constexpr int K = 3;                 // taps K x K: one warp each
  static constexpr int kWarps = K * K;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int BM = 64;               // output channels of a block (GEMM rows)
  static constexpr int BC = 32;               // input channels of a block (GEMM columns of each tap)
  static constexpr int kPixels = 64;          // output pixels of one patch: the reduction of a stage
  static constexpr int kStages = 3;
  static constexpr int MI = BM / 16, NI = BC / 8;  // mma tiles of a warp: all 64 x 32 of its tap
  static constexpr int kMinBlocks = 2;
};

// Patch geometry, set on the host (wgrad_halo_geom) and the same for every patch of a launch.
struct HaloPatch {
  int lw, lh;          // log2 of TW and TH; TI = kPixels >> (lw + lh)
  int hw, hh;          // halo columns and rows of one image: TW + K - 1, TH + K - 1
  int tiles_w, tiles_h, units;  // patches across Wo, across Ho, and in all (tiles_i x tiles_h x tiles_w)
  int halo_rows;       // TI * hh * hw; halo row halo_rows stays zero
  int units_per_split;
};

// Patch u's first output pixel: image b0, row oh0, column ow0.
struct PatchOrigin {
  int b0, oh0, ow0;
};
__device__ __forceinline__ PatchOrigin patch_origin(const HaloPatch& hp, int u) {
  const int tw = u % hp.tiles_w, rest = u / hp.tiles_w, th = rest % hp.tiles_h, ti = rest / hp.tiles_h;
  return {ti << (6 - hp.lw - hp.lh), th << hp.lh, tw << hp.lw};
}

// Patch pixel k (0..63) at tap (kh, kw): its row in the halo tile, or the zero row when the pixel
// is outside the output.
__device__ __forceinline__ int halo_row(const HaloPatch& hp, const conv::Geom& g, const PatchOrigin& o, int k, int kh,
                                        int kw) {
  const int i = k >> (hp.lw + hp.lh), r = (k >> hp.lw) & ((1 << hp.lh) - 1), c = k & ((1 << hp.lw) - 1);
  const bool ok = o.b0 + i < g.b && o.oh0 + r < g.ho && o.ow0 + c < g.wo;
  return ok ? (i * hp.hh + r + kh) * hp.hw + c + kw : hp.halo_rows;
}

// out[split][co][tap * Ci + c] = sum over the split's patches' pixels m of dy[m, co] x[m's tap, c],
// x [B, H, W, g.c] and dy [B*Ho*Wo, Cop] packed (channels padded with zeros to whole chunks).
// Block (blockIdx.x = split, blockIdx.y: channels co0 = 64 y, blockIdx.z: channels ci0 = 32 z).
template <class Op>
__global__ void __launch_bounds__(WgradHalo::kThreads, WgradHalo::kMinBlocks)
    conv_tc_wgrad_halo_kernel(const typename Op::T* __restrict__ x, const typename Op::T* __restrict__ dy,
                              float* __restrict__ out, conv::Geom g, HaloPatch hp, int Cop, int Co, int Ci) {
  using T = typename Op::T;
  using H = WgradHalo;
  constexpr int BM = H::BM, BC = H::BC, P = H::kPixels, kC = Op::kChunk, S = H::kStages, kT = H::kThreads;
  constexpr int lda = BM + Op::kColPad, ldb = BC + Op::kColPad;
  constexpr int kCprA = BM / kC, kCprB = BC / kC;  // chunks per tile row
  extern __shared__ __align__(16) unsigned char smem[];
  const int hrows = hp.halo_rows + 1;  // with the zero row
  T* const As = reinterpret_cast<T*>(smem);  // [S][P][lda]: dy, pixel-major (k-major for the GEMM)
  T* const Bs = As + S * P * lda;            // [S][hrows][ldb]: x's halo

  const int tid = threadIdx.x, split = blockIdx.x;
  const int co0 = blockIdx.y * BM, ci0 = blockIdx.z * BC;
  const int u_begin = split * hp.units_per_split;  // < units: the host leaves no split empty
  const int n_units = min(hp.units, u_begin + hp.units_per_split) - u_begin;

  auto load = [&](int stage, int u) {
    const PatchOrigin o = patch_origin(hp, u);
    T* const as = As + stage * P * lda;
    for (int i = tid; i < P * kCprA; i += kT) {
      const int k = i / kCprA, col = i - k * kCprA, co = co0 + col * kC;
      const int pi = k >> (hp.lw + hp.lh), r = (k >> hp.lw) & ((1 << hp.lh) - 1), c = k & ((1 << hp.lw) - 1);
      const int b = o.b0 + pi, oh = o.oh0 + r, ow = o.ow0 + c;
      const bool ok = co < Cop && b < g.b && oh < g.ho && ow < g.wo;
      const T* src = ok ? dy + ((int64_t(b) * g.ho + oh) * g.wo + ow) * Cop + co : dy;
      warp::cp_async_16_pred(as + k * lda + col * kC, src, ok);
    }
    T* const bs = Bs + stage * hrows * ldb;
    const int per_image = hp.hh * hp.hw;
    for (int i = tid; i < hrows * kCprB; i += kT) {
      const int row = i / kCprB, col = i - row * kCprB, ci = ci0 + col * kC;
      const int pi = row / per_image, rem = row - pi * per_image, hr = rem / hp.hw, hc = rem - hr * hp.hw;
      const int b = o.b0 + pi, ih = o.oh0 - g.p + hr, iw = o.ow0 - g.p + hc;
      const bool ok = row < hp.halo_rows && ci < g.c && b < g.b && ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
      const T* src = ok ? x + ((int64_t(b) * g.h + ih) * g.w + iw) * g.c + ci : x;
      warp::cp_async_16_pred(bs + row * ldb + col * kC, src, ok);
    }
  };

  const int warp_id = tid / 32, lane = tid % 32;
  const int kh = warp_id / H::K, kw = warp_id - kh * H::K;  // this warp's tap
  float acc[H::MI][H::NI][4] = {};

  // One commit group per patch (possibly empty), as conv_tc_wgrad_kernel's pipeline.
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < n_units) load(s, u_begin + s);
    warp::cp_async_commit();
  }
  for (int t = 0; t < n_units; ++t) {
    warp::cp_async_wait<S - 2>();
    __syncthreads();  // patch t landed for all; everyone is done with patch t - 1's stage
    const int next = t + S - 1;
    if (next < n_units) load(next % S, u_begin + next);
    warp::cp_async_commit();
    const int st = t % S;
    const T* const as = As + st * P * lda;
    const T* const bs = Bs + st * hrows * ldb;
    const PatchOrigin o = patch_origin(hp, u_begin + t);
#pragma unroll 1
    for (int ks = 0; ks < P; ks += Op::kMmaK) {
      uint32_t b[H::NI][2];
      if constexpr (kC == 8) {
        // ldmatrix .x4 .trans, as load_b_col: lane's row k = ks + (lane & 7) + 8 ((lane >> 3) & 1),
        // its column n0 + 8 (lane >> 4); the row is the pixel's halo row at this warp's tap.
        const int hr = halo_row(hp, g, o, ks + (lane & 7) + (((lane >> 3) & 1) << 3), kh, kw);
#pragma unroll
        for (int nj = 0; nj < H::NI; nj += 2) {
          uint32_t r[4];
          warp::ldmatrix_x4_trans(r, bs + hr * ldb + 8 * nj + ((lane >> 4) << 3));
          b[nj][0] = r[0], b[nj][1] = r[1], b[nj + 1][0] = r[2], b[nj + 1][1] = r[3];
        }
      } else {
        // tf32, as load_b_col: lane (g, c) reads rows ks + c and ks + c + 4, column n0 + g.
        const int gq = lane >> 2, c = lane & 3;
        const int r0 = halo_row(hp, g, o, ks + c, kh, kw) * ldb, r1 = halo_row(hp, g, o, ks + c + 4, kh, kw) * ldb;
#pragma unroll
        for (int ni = 0; ni < H::NI; ++ni) {
          b[ni][0] = warp::f32_to_tf32(bs[r0 + 8 * ni + gq]);
          b[ni][1] = warp::f32_to_tf32(bs[r1 + 8 * ni + gq]);
        }
      }
      // A fragments one at a time: with all four live a thread needed more than the 96 registers
      // ptxas gives it for two 288-thread blocks an SM (it spilled).
#pragma unroll
      for (int mi = 0; mi < H::MI; ++mi) {
        uint32_t a[4];
        load_a_col<Op>(as, lda, 16 * mi, ks, lane, a);
#pragma unroll
        for (int ni = 0; ni < H::NI; ++ni) mma<Op>(acc[mi][ni], a, b[ni]);
      }
    }
  }
  warp::cp_async_wait<0>();

  // As conv_tc_wgrad_kernel's epilogue: columns of this warp's tap, the channels' zero padding
  // (c >= Ci) left out; float2 stores when Ci is even.
  const int kd_out = H::K * H::K * Ci;
  float* const dst = out + int64_t(split) * Co * kd_out + warp_id * Ci;
  const int gq = lane >> 2, tq = lane & 3;
  const bool pairs = (Ci & 1) == 0;
#pragma unroll
  for (int ni = 0; ni < H::NI; ++ni) {
    const int c = ci0 + 8 * ni + 2 * tq;
    if (c >= Ci) continue;
#pragma unroll
    for (int mi = 0; mi < H::MI; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = co0 + 16 * mi + gq + 8 * h;
        if (r >= Co) continue;
        float* const d = dst + int64_t(r) * kd_out + c;
        if (pairs) {
          *reinterpret_cast<float2*>(d) = make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
        } else {
          d[0] = acc[mi][ni][2 * h];
          if (c + 1 < Ci) d[1] = acc[mi][ni][2 * h + 1];
        }
      }
  }
}

}  // namespace dd::kernels::cuda::conv_tc

namespace dd::kernels::cuda::conv_tc {

// The patch geometry and split of a launch. splits > 0 forces the split count; otherwise about
// kHaloTargetBlocks blocks (two 288-thread blocks on each of 132 SMs; a constant, not the device's
// SM count, so the split and every bit of dw are the same on any GPU), each at least
// kHaloMinUnits patches long.
constexpr int64_t kHaloTargetBlocks = 2 * 132;
constexpr int64_t kHaloMinUnits = 4;

struct WgradHaloPlan {
  HaloPatch hp;
  int splits;
  unsigned co_tiles, ci_tiles;
};

inline int ceil_log2(int v) {
  int l = 0;
  while ((1 << l) < v) ++l;
  return l;
}

inline WgradHaloPlan wgrad_halo_plan(const conv::Geom& g, int Co, int splits) {
  static_assert(WgradHalo::kPixels == 64, "patch_origin's shift assumes 64 = 2^6 pixels a patch");
  WgradHaloPlan p;
  HaloPatch& hp = p.hp;
  hp.lw = std::min(4, ceil_log2(g.wo));  // at most 16 columns: one bf16 mma k-step is a patch row
  hp.lh = std::min(6 - hp.lw, ceil_log2(g.ho));
  const int li = 6 - hp.lw - hp.lh;
  hp.hw = (1 << hp.lw) + WgradHalo::K - 1;
  hp.hh = (1 << hp.lh) + WgradHalo::K - 1;
  hp.tiles_w = (g.wo + (1 << hp.lw) - 1) >> hp.lw;
  hp.tiles_h = (g.ho + (1 << hp.lh) - 1) >> hp.lh;
  const int64_t tiles_i = (int64_t(g.b) + (1 << li) - 1) >> li;
  const int64_t units = tiles_i * hp.tiles_h * hp.tiles_w;
  DD_CHECK(units <= INT32_MAX / 2, "conv2d_backward (tensor cores, dw halo): ", units, " patches of 64 pixels exceed the kernel's int indices");
  hp.units = static_cast<int>(units);
  hp.halo_rows = (1 << li) * hp.hh * hp.hw;
  p.co_tiles = static_cast<unsigned>((Co + WgradHalo::BM - 1) / WgradHalo::BM);
  p.ci_tiles = static_cast<unsigned>((g.c + WgradHalo::BC - 1) / WgradHalo::BC);
  DD_CHECK(p.co_tiles <= 65535 && p.ci_tiles <= 65535, "conv2d_backward (tensor cores, dw halo): ", Co, " x ", g.c,
           " channels exceed the grid");
  int64_t s = splits > 0 ? splits
                         : std::min((kHaloTargetBlocks + p.co_tiles * p.ci_tiles - 1) / (p.co_tiles * p.ci_tiles),
                                    std::max<int64_t>(1, units / kHaloMinUnits));
  s = std::clamp<int64_t>(s, 1, units);
  hp.units_per_split = static_cast<int>((units + s - 1) / s);
  p.splits = static_cast<int>((units + hp.units_per_split - 1) / hp.units_per_split);  // no empty split
  return p;
}

// Dynamic shared memory of a launch: the stages' dy tiles and halos (with its zero row).
template <class Op>
int wgrad_halo_smem_bytes(const HaloPatch& hp) {
  return WgradHalo::kStages *
         (WgradHalo::kPixels * (WgradHalo::BM + Op::kColPad) + (hp.halo_rows + 1) * (WgradHalo::BC + Op::kColPad)) *
         static_cast<int>(sizeof(typename Op::T));
}

}  // namespace dd::kernels::cuda::conv_tc
