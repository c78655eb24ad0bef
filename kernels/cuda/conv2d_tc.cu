// Convolution as tensor-core implicit GEMMs (bf16 or tf32 operands, fp32 accumulation), the
// TF32 / BF16 precision path of kernels::cuda::conv2d_* (the fp32 SIMT kernels of conv2d.cu stay
// the reference and the FP32 path). The GEMMs are those of conv2d.cu:
//   forward  y[m, n]  = sum_kk im2col(x)[m, kk] w[n, kk] + bias[n]  M = B*Ho*Wo, N = Co
//   dx       the same kernel on dy with wt[ci, kh, kw, co] = w[co, K-1-kh, K-1-kw, ci], padding K-1-p
//   dw[co, kk] = sum_m dy[m, co] im2col(x)[m, kk], split over m, partials folded in split order
//   dbias    conv2d.cu's deterministic column sums (fp32 dy, unrounded)
//   sums     the forward's optional epilogue: GroupNorm's per-(image, channel) sums of y and y^2
//
// A cast pre-pass rounds each fp32 operand once (bf16: nearest even; tf32: cvt.rna) and pads its
// channel dim with zeros to a multiple of a 16-byte chunk (conv2d_tc_tiles.cuh says why); tf32
// skips it where no padding is needed and rounds as fragments are loaded instead. A bf16 x (the
// input the tape keeps under BF16, autograd/conv2d_keep.h) is already the rounded operand: read in
// place when no padding is needed, else copied zero-padded; the tf32 path widens it first. The
// kernels then move only whole chunks with cp.async, zero-filling the halo, the rows past M or N
// and the reduction tail, through a 3-stage pipeline; fragments come from shared memory by
// ldmatrix (bf16) or 32-bit loads (tf32). Every sum runs in a fixed order (mma k order within a
// stage, stages in order, dw splits folded in order): results repeat bitwise run to run.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "engine/dtype.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/channel_sums.cuh"
#include "kernels/cuda/conv2d_tc_halo.cuh"
#include "kernels/cuda/conv2d_tc_pack.cuh"
#include "kernels/cuda/conv2d_tc_sums.cuh"
#include "kernels/cuda/conv2d_tc_tiles.cuh"
#include "kernels/cuda/conv2d_tc_wgrad.cuh"
#include "kernels/cuda/conv2d_tc_wgrad_halo.cuh"
#include "kernels/cuda/conv2d_tiles.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
using conv::Geom;
using namespace conv_tc;

// y[m, n] = sum_kk im2col(x)[m, kk] w[n, kk] (+ bias[n]), with x [B, H, W, g.c] (g.c a multiple of
// kChunk), w [N, Kd] and Kd = K*K*g.c. Thread tid loads chunk column tid % 4 of every
// (kThreads / 4)-th row of both operand tiles; its pixels (A rows) are decomposed once, the tap of
// its chunk once per stage.
// kSums: also part[k][blockIdx.x][j][n] = sum of y[m, n] (k = 0) or y[m, n]^2 (k = 1) over this
// block's rows m of its j-th image (j < J), in double (fold_tc_sums_kernel says why).
template <class Op, class Tile, bool kSums = false>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    conv_tc_fprop_kernel(const typename Op::T* __restrict__ x, const typename Op::T* __restrict__ w,
                         const float* __restrict__ bias, YOut y, Geom g, int M, int N, int Kd,
                         double* __restrict__ part, int J) {
  using T = typename Op::T;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Op::kBK, kC = Op::kChunk, S = Tile::kStages;
  constexpr int ld = BK + Op::kRowPad;
  constexpr int kCpr = BK / kC;  // chunks per tile row
  static_assert(Tile::kThreads % kCpr == 0, "loader mapping");
  constexpr int kRowsPerPass = Tile::kThreads / kCpr;
  constexpr int kAPasses = (BM + kRowsPerPass - 1) / kRowsPerPass;
  constexpr int kBPasses = (BN + kRowsPerPass - 1) / kRowsPerPass;
  extern __shared__ __align__(16) unsigned char smem[];
  T* const As = reinterpret_cast<T*>(smem);
  T* const Bs = As + S * BM * ld;

  const int tid = threadIdx.x, lcol = tid % kCpr, lrow = tid / kCpr;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;

  // Per pass: the first input pixel of its row's image (b*H*W, an int: the host checks B*H*W)
  // and the input row / column of tap (0, 0). A row past M gets ih0 far below 0, so that every
  // bounds check fails: three ints a pass, which keeps the 256-row tile's four passes in 128
  // registers.
  int pix0[kAPasses], ih0[kAPasses], iw0[kAPasses];
#pragma unroll
  for (int i = 0; i < kAPasses; ++i) {
    const int r = lrow + kRowsPerPass * i, m = m0 + r;
    const bool ok = r < BM && m < M;
    const conv::PixelCursor c = conv::pixel_cursor(g, ok ? m : 0);
    pix0[i] = c.b * g.h * g.w;
    ih0[i] = ok ? c.oh - g.p : INT_MIN / 2;
    iw0[i] = c.ow - g.p;
  }

  // The tap (kh, kw, ci) of this thread's chunk, kk = (kh K + kw) g.c + ci: loads run in k order,
  // kBK apart, so it steps without the two divisions per stage (usually one carry, at most
  // kBK / g.c of them).
  int ci = lcol * kC, kh = 0, kw = 0;
  auto carry = [&] {
    ci -= g.c;
    if (++kw == g.k) kw = 0, ++kh;
  };
  while (ci >= g.c) carry();
  auto load = [&](int stage, int k0) {
    const int kk = k0 + lcol * kC;
    const bool k_ok = kk < Kd;
    T* const as = As + stage * BM * ld + lcol * kC;
    T* const bs = Bs + stage * BN * ld + lcol * kC;
#pragma unroll
    for (int i = 0; i < kAPasses; ++i) {
      const int r = lrow + kRowsPerPass * i;
      if (r >= BM) break;
      const int ih = ih0[i] + kh, iw = iw0[i] + kw;
      const bool ok = k_ok && ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
      const T* src = ok ? x + int64_t(pix0[i] + ih * g.w + iw) * g.c + ci : x;
      warp::cp_async_16_pred(as + r * ld, src, ok);
    }
#pragma unroll
    for (int i = 0; i < kBPasses; ++i) {
      const int r = lrow + kRowsPerPass * i;
      if (r >= BN) break;
      const bool ok = n0 + r < N && k_ok;
      const T* src = ok ? w + int64_t(n0 + r) * Kd + kk : w;
      warp::cp_async_16_pred(bs + r * ld, src, ok);
    }
    for (ci += BK; ci >= g.c;) carry();
  };

  const int warp_id = tid / 32, lane = tid % 32;
  const int wr = (warp_id / Tile::kWarpsN) * Tile::WM, wc = (warp_id % Tile::kWarpsN) * Tile::WN;
  float acc[Tile::MI][Tile::NI][4] = {};

  // Stage s holds k-tile s mod S; one commit group per k-tile (possibly empty), so that
  // wait<S - 2> at k-tile kt means "k-tile kt has landed" (tests/emu/warp_kernels.cu's pipeline).
  const int KT = (Kd + BK - 1) / BK;
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < KT) load(s, s * BK);
    warp::cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    warp::cp_async_wait<S - 2>();
    __syncthreads();  // k-tile kt visible to all; everyone is done with k-tile kt - 1's stage
    const int next = kt + S - 1;
    if (next < KT) load(next % S, next * BK);
    warp::cp_async_commit();
    const int st = kt % S;
    warp_stage_product<Op, Tile, false, false>(As + st * BM * ld, ld, Bs + st * BN * ld, ld, wr, wc, lane, acc);
  }
  warp::cp_async_wait<0>();

  const int gq = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = m0 + wr + 16 * mi + gq + 8 * h;
      if (m >= M) continue;
#pragma unroll
      for (int ni = 0; ni < Tile::NI; ++ni)
        store_pair(y, m, n0 + wc + 8 * ni + 2 * tq, N, bias, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
    }
  if constexpr (kSums)
    tc_sums_epilogue<Tile>(acc, bias, smem, part, J, m0, n0, M, N, g.ho * g.wo, wr, wc, tid);
}

// ---- host side ----------------------------------------------------------------------------

int checked_int(int64_t v, const char* what) {
  DD_CHECK(v >= 0 && v <= INT_MAX - 1024, "conv2d (tensor cores): ", what, " = ", v,
           " does not fit the kernels' int indices");
  return static_cast<int>(v);
}

int round_up(int v, int to) { return (v + to - 1) / to * to; }

// An operand as the kernels read it: a rounded, zero-padded copy (t), or the fp32 tensor itself.
template <class Op>
struct Packed {
  Tensor t;
  typename Op::T* ptr = nullptr;
  typename Op::T* data() { return ptr; }
};

template <class Op>
Packed<Op> packed_empty(int64_t n) {
  Packed<Op> p;
  p.t = Tensor::empty({n}, Device::CUDA, Op::kChunk == 8 ? DType::BF16 : DType::F32);
  p.ptr = static_cast<typename Op::T*>(p.t.raw_data());
  return p;
}

// src [rows, C] fp32 as [rows, Cp]. tf32 reads the tensor itself when its channels fill whole
// chunks and it is 16-byte aligned (the fragment loads round it): no pre-pass for the U-Net's
// layers but the 3-channel ones. Otherwise a rounded copy, zero-padded to Cp channels.
template <class Op>
Packed<Op> pack(const float* src, int64_t rows, int C, int Cp) {
  if constexpr (Op::kChunk == 4) {
    if (C == Cp && reinterpret_cast<uintptr_t>(src) % 16 == 0) return {Tensor(), const_cast<float*>(src)};
  }
  Packed<Op> p = packed_empty<Op>(rows * Cp);
  pack_kernel<Op><<<grid_for(rows * Cp), kThreads, 0, stream()>>>(src, rows, C, Cp, p.data());
  DD_CUDA_LAUNCH_CHECK("pack_kernel");
  return p;
}

// x [rows, C] as [rows, Cp]: a bf16 x (only under BF16: the entry points widen it for TF32) is
// already the rounded operand, read in place when its channels fill whole chunks and it is 16-byte
// aligned (every U-Net layer but the 3-channel input), else copied zero-padded; an fp32 x is packed.
// The same for w [Co, K, K, C] as Co*K*K rows.
template <class Op>
Packed<Op> pack_input(const Tensor& x, int C, int Cp) {
  const int64_t rows = x.numel() / C;
  if (x.dtype() != DType::BF16) return pack<Op>(x.data(), rows, C, Cp);
  if constexpr (Op::kChunk == 8) {
    const uint16_t* src = static_cast<const uint16_t*>(x.raw_data());
    if (C == Cp && reinterpret_cast<uintptr_t>(src) % 16 == 0) return {Tensor(), const_cast<uint16_t*>(src)};
    Packed<Op> p = packed_empty<Op>(rows * Cp);
    pad_bf16_kernel<<<grid_for(rows * Cp), kThreads, 0, stream()>>>(src, rows, C, Cp, p.data());
    DD_CUDA_LAUNCH_CHECK("pad_bf16_kernel");
    return p;
  } else {
    DD_CHECK(false, "conv2d (tensor cores): a bf16 operand ", describe(x), " reached the tf32 path unwidened");
    return {};
  }
}

constexpr int kNumTiles = 6;
const char* const kTileNames[kNumTiles] = {"128x128_64x32_S3", "128x64_64x32_S3", "64x64_32x32_S3",
                                           "128x32_32x32_S3",  "256x64_64x32_S4", "64x256_32x64_S4"};

// f(Tile{}) for tile index tile: the one place the indices meet the types.
template <class F>
void with_tile(int tile, F&& f) {
  switch (tile) {
    case 0: return f(Tile128x128_64x32_S3{});
    case 1: return f(Tile128x64_64x32_S3{});
    case 2: return f(Tile64x64_32x32_S3{});
    case 3: return f(Tile128x32_32x32_S3{});
    case 4: return f(Tile256x64_64x32_S4{});
    case 5: return f(Tile64x256_32x64_S4{});
  }
  DD_CHECK(false, "conv2d (tensor cores): no tile ", tile, " (0..", kNumTiles - 1, ")");
}

// The tile rule, for a GEMM of rows x cols: outputs no wider than 32 (the 3-channel last conv,
// dx of the 3-channel first conv) take the narrow 128x32 tile, which wastes no columns; otherwise
// the largest tile that still gives one wave of blocks (132 SMs; tiles of 128x128 need cols > 64),
// else the smallest, 64x64, for the most blocks. Small maps at the bottom of the U-Net (4x4,
// 8x8 at batch 128: 2048 and 8192 rows) thus run 64x64 or 128x64 tiles.
int pick_tile(int64_t rows, int64_t cols) {
  if (cols <= 32) return 3;
  auto blocks = [&](int bm, int bn) { return ((rows + bm - 1) / bm) * ((cols + bn - 1) / bn); };
  constexpr int64_t kWave = 132;
  if (cols > 64 && blocks(128, 128) >= kWave) return 0;
  if (blocks(128, 64) >= kWave) return 1;
  return 2;
}

// sums (device, 2*B*N doubles) non-null: the kSums kernel and the fold.
template <class Op, class Tile>
void launch_fprop_tile(const typename Op::T* x, const typename Op::T* w, const float* bias, YOut y,
                       const Geom& g, int M, int N, int Kd, double* sums) {
  constexpr int smem = Tile::kStages * (row_tile_elems<Op, Tile::BM>() + row_tile_elems<Op, Tile::BN>()) *
                       static_cast<int>(sizeof(typename Op::T));
  static_assert(2 * Tile::kWarpsM * Tile::BN * int(sizeof(double)) <= smem, "the sums' reduction reuses the pipeline");
  const dim3 grid((M + Tile::BM - 1) / Tile::BM, (N + Tile::BN - 1) / Tile::BN);
  DD_CHECK(grid.y <= 65535, "conv2d (tensor cores): ", N, " output channels exceed the grid");
  if (!sums) {
    DD_CUDA_CHECK(cudaFuncSetAttribute(conv_tc_fprop_kernel<Op, Tile>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    conv_tc_fprop_kernel<Op, Tile><<<grid, Tile::kThreads, smem, stream()>>>(x, w, bias, y, g, M, N, Kd, nullptr, 0);
    DD_CUDA_LAUNCH_CHECK("conv_tc_fprop_kernel");
    return;
  }
  // J: the most images BM consecutive rows can touch.
  const int hw = g.ho * g.wo, J = std::min(g.b, (Tile::BM - 1) / hw + 2), blocks = static_cast<int>(grid.x);
  DoubleScratch part(2 * int64_t(blocks) * J * N);
  DD_CUDA_CHECK(cudaFuncSetAttribute(conv_tc_fprop_kernel<Op, Tile, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  conv_tc_fprop_kernel<Op, Tile, true><<<grid, Tile::kThreads, smem, stream()>>>(x, w, bias, y, g, M, N, Kd, part.get(), J);
  DD_CUDA_LAUNCH_CHECK("conv_tc_fprop_kernel (sums)");
  fold_tc_sums_kernel<<<grid_for(2 * int64_t(g.b) * N), kThreads, 0, stream()>>>(part.get(), g.b, N, hw, Tile::BM,
                                                                                blocks, J, sums);
  DD_CUDA_LAUNCH_CHECK("fold_tc_sums_kernel");
}

// TcConvOptions::halo: conv2d_tc_halo.cuh's kernel, a block per 8x16 output patch and 64 channels
// (Tile::BN: 128 under halo_wide).
// sums (device, 2*B*N doubles) non-null: the kSums kernel and its fold.
template <class Op, class Tile>
void launch_halo_fprop(const typename Op::T* x, const typename Op::T* w, const float* bias, YOut y, const Geom& g,
                       int N, int Kd, double* sums) {
  DD_CHECK(g.k >= 2, "conv2d (tensor cores): the halo kernel takes K >= 2 (its halo buffers alternate every K*K "
                     "steps), got K = ", g.k);
  const int tiles_h = (g.ho + Halo::TH - 1) / Halo::TH, tiles_w = (g.wo + Halo::TW - 1) / Halo::TW;
  const int blocks = checked_int(int64_t(g.b) * tiles_h * tiles_w, "B x output patches");
  const int smem = halo_smem_bytes<Op, Tile>(g.k);
  DD_CHECK(smem <= kMaxBlockSmem, "conv2d (tensor cores): the halo kernel's ", smem, " bytes of shared memory for K = ",
           g.k, " exceed the 227 KB a block may have");
  const dim3 grid(static_cast<unsigned>(blocks), (N + Tile::BN - 1) / Tile::BN);
  DD_CHECK(grid.y <= 65535, "conv2d (tensor cores): ", N, " output channels exceed the grid");
  if (!sums) {
    DD_CUDA_CHECK(cudaFuncSetAttribute(conv_tc_halo_fprop_kernel<Op, Tile>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       smem));
    conv_tc_halo_fprop_kernel<Op, Tile><<<grid, Tile::kThreads, smem, stream()>>>(x, w, bias, y, g, N, Kd, tiles_h,
                                                                                   tiles_w, nullptr);
    DD_CUDA_LAUNCH_CHECK("conv_tc_halo_fprop_kernel");
    return;
  }
  // The epilogue's reduction reuses the pipeline's memory.
  DD_CHECK(2 * Tile::kWarpsM * Tile::BN * int(sizeof(double)) <= smem, "conv2d (tensor cores): halo sums scratch");
  DoubleScratch part(2 * int64_t(blocks) * N);
  DD_CUDA_CHECK(cudaFuncSetAttribute(conv_tc_halo_fprop_kernel<Op, Tile, true>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  conv_tc_halo_fprop_kernel<Op, Tile, true><<<grid, Tile::kThreads, smem, stream()>>>(x, w, bias, y, g, N, Kd, tiles_h,
                                                                                       tiles_w, part.get());
  DD_CUDA_LAUNCH_CHECK("conv_tc_halo_fprop_kernel (sums)");
  fold_halo_sums_kernel<<<grid_for(2 * int64_t(g.b) * N), kThreads, 0, stream()>>>(part.get(), g.b, N,
                                                                                  tiles_h * tiles_w, sums);
  DD_CUDA_LAUNCH_CHECK("fold_halo_sums_kernel");
}

// opt.halo: the halo kernel; else tile opt.tile, or the rule's when -1.
template <class Op>
void launch_fprop(const TcConvOptions& opt, const typename Op::T* x, const typename Op::T* w, const float* bias,
                  YOut y, const Geom& g, int N, double* sums = nullptr) {
  const int M = checked_int(int64_t(g.b) * g.ho * g.wo, "B*Ho*Wo");
  const int Kd = checked_int(int64_t(g.k) * g.k * g.c, "K*K*Ci");
  checked_int(int64_t(g.b) * g.h * g.w, "B*H*W");  // the kernel's pixel indices
  if (opt.halo) {
    if (opt.halo_wide) return launch_halo_fprop<Op, Halo::WideTile>(x, w, bias, y, g, N, Kd, sums);
    return launch_halo_fprop<Op, Halo::Tile>(x, w, bias, y, g, N, Kd, sums);
  }
  int tile = opt.tile;
  if (tile < 0) tile = pick_tile(M, N);
  with_tile(tile, [&](auto t) { launch_fprop_tile<Op, decltype(t)>(x, w, bias, y, g, M, N, Kd, sums); });
}

template <class Op, class Tile>
void launch_wgrad_tile(const typename Op::T* x, const typename Op::T* dy, float* out, const Geom& g, int M,
                       int Cop, int Co, int Kd, int Ci, int splits, int pixels_per_split) {
  const int smem = Tile::kStages * (col_tile_elems<Op, Tile::BM>() + col_tile_elems<Op, Tile::BN>()) *
                   static_cast<int>(sizeof(typename Op::T));
  DD_CUDA_CHECK(cudaFuncSetAttribute(conv_tc_wgrad_kernel<Op, Tile>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid((Co + Tile::BM - 1) / Tile::BM, (Kd + Tile::BN - 1) / Tile::BN, static_cast<unsigned>(splits));
  DD_CHECK(grid.y <= 65535, "conv2d_backward (tensor cores): K*K*Ci = ", Kd, " exceeds the grid");
  conv_tc_wgrad_kernel<Op, Tile><<<grid, Tile::kThreads, smem, stream()>>>(x, dy, out, g, M, Cop, Co, Kd, Ci, pixels_per_split);
  DD_CUDA_LAUNCH_CHECK("conv_tc_wgrad_kernel");
}

// About four waves of 132 SMs; a constant (not the device's SM count) so the split, and with it
// every bit of dw, is the same on any GPU.
constexpr int64_t kTargetBlocks = 4 * 132;
constexpr int64_t kMinStepsPerSplit = 8;

struct WgradPlan {
  int tile;
  int64_t splits, steps_per_split;
};

// dw's GEMM has rows Co, columns Kd = K*K*Ci (padded) and M pixels to reduce: the forward's tile
// rule on that GEMM (no 128x32 tile unless asked), then enough splits of the pixels for about
// kTargetBlocks blocks, each at least kMinStepsPerSplit stages long.
template <class Op>
WgradPlan wgrad_plan(const TcConvOptions& opt, int M, int Co, int Kd) {
  WgradPlan p;
  p.tile = opt.tile >= 0 ? opt.tile : (Co > 64 && Kd > 64 ? 0 : 2);
  int bm = 0, bn = 0;
  with_tile(p.tile, [&](auto t) { bm = decltype(t)::BM, bn = decltype(t)::BN; });
  const int64_t tiles = int64_t((Co + bm - 1) / bm) * ((Kd + bn - 1) / bn);
  const int64_t steps = (M + Op::kBK - 1) / Op::kBK;
  int64_t splits = opt.splits > 0 ? opt.splits
                                  : std::min((kTargetBlocks + tiles - 1) / tiles,
                                             std::max<int64_t>(1, steps / kMinStepsPerSplit));
  splits = std::clamp<int64_t>(splits, 1, std::min<int64_t>(steps, 65535));
  p.steps_per_split = (steps + splits - 1) / splits;
  p.splits = (steps + p.steps_per_split - 1) / p.steps_per_split;  // no empty split
  return p;
}

// dw [Co, K, K, Ci] from x [B, H, W, g.c] and dy [M, Cop], both packed.
template <class Op>
void weight_grad(const TcConvOptions& opt, const typename Op::T* x, const Geom& g, const typename Op::T* dy, int Cop,
                 int Co, int Ci, float* dw) {
  const int M = checked_int(int64_t(g.b) * g.ho * g.wo, "B*Ho*Wo");
  const int Kd = checked_int(int64_t(g.k) * g.k * g.c, "K*K*Ci");
  WgradPlan plan{};
  WgradHaloPlan halo{};
  if (opt.dw_halo) {
    DD_CHECK(g.k == WgradHalo::K, "conv2d_backward (tensor cores): the dw halo kernel takes 3x3 kernels (a warp a "
             "tap), got K = ", g.k);
    halo = wgrad_halo_plan(g, Co, opt.splits);
    plan.splits = halo.splits;
  } else {
    plan = wgrad_plan<Op>(opt, M, Co, Kd);
  }
  const int64_t splits = plan.splits;
  const int64_t n = int64_t(Co) * g.k * g.k * Ci;
  Tensor partial;
  float* out = dw;
  if (splits > 1) {
    partial = Tensor::empty({splits, n}, Device::CUDA);
    out = partial.data();
  }
  const int s = static_cast<int>(splits);
  if (opt.dw_halo) {
    const int smem = wgrad_halo_smem_bytes<Op>(halo.hp);
    DD_CHECK(smem <= kMaxBlockSmem, "conv2d_backward (tensor cores): the dw halo kernel's ", smem, " bytes of shared "
             "memory for ", g.ho, "x", g.wo, " maps exceed the 227 KB a block may have");
    DD_CUDA_CHECK(cudaFuncSetAttribute(conv_tc_wgrad_halo_kernel<Op>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    const dim3 grid(static_cast<unsigned>(s), halo.co_tiles, halo.ci_tiles);
    conv_tc_wgrad_halo_kernel<Op><<<grid, WgradHalo::kThreads, smem, stream()>>>(x, dy, out, g, halo.hp, Cop, Co, Ci);
    DD_CUDA_LAUNCH_CHECK("conv_tc_wgrad_halo_kernel");
  } else {
    const int pps = static_cast<int>(plan.steps_per_split * Op::kBK);
    with_tile(plan.tile, [&](auto t) { launch_wgrad_tile<Op, decltype(t)>(x, dy, out, g, M, Cop, Co, Kd, Ci, s, pps); });
  }
  if (splits > 1) {
    fold_tc_splits_kernel<<<grid_for(n), kThreads, 0, stream()>>>(out, s, n, dw);
    DD_CUDA_LAUNCH_CHECK("fold_tc_splits_kernel");
  }
}

void check_args(const char* op, const Tensor& x, const Tensor& w, Precision prec, const TcConvOptions& opt) {
  DD_CHECK(prec == Precision::BF16 || prec == Precision::TF32, op, ": precision ", precision_name(prec),
           " has no tensor-core path (fp32 runs conv2d_forward / conv2d_backward)");
  DD_CHECK(x.ndim() == 4 && w.ndim() == 4 && w.dim(1) == w.dim(2) && w.dim(3) == x.dim(3), op, ": x ", describe(x),
           " and w ", describe(w), " must be NHWC and OHWI with the same Ci");
  DD_CHECK(opt.tile >= -1 && opt.tile < kNumTiles, op, ": tile ", opt.tile, " is not one of the ", kNumTiles);
  DD_CHECK(opt.dw_tile >= -1 && opt.dw_tile < kNumTiles, op, ": dw tile ", opt.dw_tile, " is not one of the ", kNumTiles);
  DD_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16, op, ": x ", describe(x), " must be float32 or bfloat16");
  DD_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::BF16, op, ": w ", describe(w), " must be float32 or bfloat16");
}

Geom make_geom(const Tensor& x, int64_t k, int p, int c_padded) {
  Geom g;
  g.b = checked_int(x.dim(0), "B");
  g.h = checked_int(x.dim(1), "H");
  g.w = checked_int(x.dim(2), "W");
  g.c = c_padded;
  g.k = checked_int(k, "K");
  g.p = p;
  g.ho = checked_int(x.dim(1) + 2 * p - k + 1, "Ho");
  g.wo = checked_int(x.dim(2) + 2 * p - k + 1, "Wo");
  return g;
}

// y fp32, or bf16 (y_dtype BF16: conv2d_forward_tc_bf16; no sums then).
template <class Op>
Tensor forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, const TcConvOptions& opt,
               Tensor* sums = nullptr, DType y_dtype = DType::F32) {
  const int ci = checked_int(x.dim(3), "Ci"), co = checked_int(w.dim(0), "Co"), k = checked_int(w.dim(1), "K");
  const int cp = round_up(ci, Op::kChunk);
  const Geom g = make_geom(x, k, padding, cp);
  Packed<Op> xq = pack_input<Op>(x, ci, cp);
  Packed<Op> wq = pack_input<Op>(w, ci, cp);
  Tensor y = Tensor::empty({g.b, g.ho, g.wo, co}, Device::CUDA, y_dtype);
  const YOut out = y_dtype == DType::BF16 ? YOut{nullptr, reinterpret_cast<uint16_t*>(y.data<bf16>())} : YOut{y.data(), nullptr};
  double* sp = nullptr;
  if (sums) {
    DoubleScratch s(2 * int64_t(g.b) * co);
    *sums = s.t;
    sp = s.get();
  }
  launch_fprop<Op>(opt, xq.data(), wq.data(), bias.defined() ? bias.data() : nullptr, out, g, co, sp);
  return y;
}

template <class Op>
Conv2dGrads backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx, bool need_dw,
                     const TcConvOptions& opt) {
  const int ci = checked_int(x.dim(3), "Ci"), co = checked_int(w.dim(0), "Co"), k = checked_int(w.dim(1), "K");
  const int cp = round_up(ci, Op::kChunk), cop = round_up(co, Op::kChunk);
  const Geom g = make_geom(x, k, padding, cp);
  Conv2dGrads out;
  if (!need_dx && !need_dw) return out;
  Packed<Op> dyq = pack<Op>(dy.data(), dy.numel() / co, co, cop);
  if (need_dw) {
    Packed<Op> xq = pack_input<Op>(x, ci, cp);
    out.dw = Tensor::empty(w.shape(), Device::CUDA);
    TcConvOptions wopt = opt;
    if (opt.dw_tile >= 0) wopt.tile = opt.dw_tile;
    weight_grad<Op>(wopt, xq.data(), g, dyq.data(), cop, co, ci, out.dw.data());
  }
  if (need_dx) {
    Packed<Op> wt = packed_empty<Op>(int64_t(ci) * k * k * cop);
    const unsigned grid = grid_for(int64_t(ci) * k * k * cop);
    if (w.dtype() == DType::BF16)
      flip_pack_kernel<Op, bf16><<<grid, kThreads, 0, stream()>>>(w.data<bf16>(), co, k, ci, cop, wt.data());
    else
      flip_pack_kernel<Op, float><<<grid, kThreads, 0, stream()>>>(w.data(), co, k, ci, cop, wt.data());
    DD_CUDA_LAUNCH_CHECK("flip_pack_kernel");
    // dy as the input of a conv with Ci outputs, padding K-1-p: its output is H x W.
    const Geom gd{g.b, g.ho, g.wo, cop, k, k - 1 - padding, g.h, g.w};
    out.dx = Tensor::empty(x.shape(), Device::CUDA);
    launch_fprop<Op>(opt, dyq.data(), wt.data(), nullptr, YOut{out.dx.data(), nullptr}, gd, ci);
  }
  return out;
}

// The three forward entry points: the rule's (or the autotuned) options unless given; sums and a
// bf16 y as forward's. A bf16 y runs the plain forward's choice: the same kernels up to the stores.
Tensor forward_entry(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias, int padding, Precision prec,
                     const TcConvOptions& given, Tensor* sums, DType y_dtype) {
  check_args(op, x, w, prec, given);
  const TcConvOptions opt = given.is_rule() ? conv2d_tc_tuned_forward(x, w, bias, padding, prec, sums != nullptr) : given;
  return prec == Precision::BF16
             ? forward<Bf16Op>(x, w, bias, padding, opt, sums, y_dtype)
             : forward<Tf32Op>(x.to(DType::F32), w.to(DType::F32), bias, padding, opt, sums, y_dtype);
}
}  // namespace

const char* conv2d_tc_tile_name(int tile) { return tile >= 0 && tile < kNumTiles ? kTileNames[tile] : "auto"; }
int conv2d_tc_tile_count() { return kNumTiles; }

TcConvPlan conv2d_tc_plan(int64_t B, int64_t H, int64_t W, int64_t Ci, int64_t Co, int64_t K, int padding,
                          Precision prec) {
  DD_CHECK(prec == Precision::BF16 || prec == Precision::TF32, "conv2d_tc_plan: precision ", precision_name(prec),
           " has no tensor-core path");
  const int64_t ho = H + 2 * padding - K + 1, wo = W + 2 * padding - K + 1;
  DD_CHECK(B > 0 && ho > 0 && wo > 0 && Ci > 0 && Co > 0, "conv2d_tc_plan: empty output for x [", B, ", ", H, ", ",
           W, ", ", Ci, "], K ", K, ", padding ", padding);
  TcConvPlan p;
  p.fwd_tile = pick_tile(B * ho * wo, Co);
  p.dx_tile = pick_tile(B * H * W, Ci);
  const int chunk = prec == Precision::BF16 ? Bf16Op::kChunk : Tf32Op::kChunk;
  const int m = checked_int(B * ho * wo, "B*Ho*Wo"), kd = checked_int(K * K * round_up(checked_int(Ci, "Ci"), chunk), "K*K*Ci");
  const WgradPlan w = prec == Precision::BF16 ? wgrad_plan<Bf16Op>({}, m, checked_int(Co, "Co"), kd)
                                               : wgrad_plan<Tf32Op>({}, m, checked_int(Co, "Co"), kd);
  p.dw_tile = w.tile;
  p.dw_splits = static_cast<int>(w.splits);
  p.dw_halo_splits = 0;
  if (K == WgradHalo::K) {
    const Geom g{checked_int(B, "B"), checked_int(H, "H"), checked_int(W, "W"), kd / 9, 3, padding,
                 checked_int(ho, "Ho"), checked_int(wo, "Wo")};
    const WgradHaloPlan h = wgrad_halo_plan(g, checked_int(Co, "Co"), 0);
    // Maps of 1 or 2 output pixels put up to 64 images in a patch: in tf32 their halos pass the
    // 227 KB a block may have (the launch refuses them), so no split is offered there.
    const int smem = prec == Precision::BF16 ? wgrad_halo_smem_bytes<Bf16Op>(h.hp) : wgrad_halo_smem_bytes<Tf32Op>(h.hp);
    p.dw_halo_splits = smem <= kMaxBlockSmem ? h.splits : 0;
  }
  return p;
}

Tensor conv2d_forward_tc(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, Precision prec,
                         const TcConvOptions& given) {
  return forward_entry("conv2d_forward_tc", x, w, bias, padding, prec, given, nullptr, DType::F32);
}

Tensor conv2d_forward_tc_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, Precision prec,
                              const TcConvOptions& given) {
  return forward_entry("conv2d_forward_tc_bf16", x, w, bias, padding, prec, given, nullptr, DType::BF16);
}

Tensor conv2d_forward_tc_sums(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, Precision prec,
                              Tensor& sums, const TcConvOptions& given) {
  return forward_entry("conv2d_forward_tc_sums", x, w, bias, padding, prec, given, &sums, DType::F32);
}

Conv2dGrads conv2d_backward_tc(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                               bool need_dw, bool need_dbias, Precision prec, const TcConvOptions& given) {
  check_args("conv2d_backward_tc", x, w, prec, given);
  const TcConvOptions opt =
      given.is_rule() ? conv2d_tc_tuned_backward(x, w, dy, padding, need_dx, need_dw, prec) : given;
  Conv2dGrads out = prec == Precision::BF16 ? backward<Bf16Op>(x, w, dy, padding, need_dx, need_dw, opt)
                                            : backward<Tf32Op>(x.to(DType::F32), w.to(DType::F32), dy, padding, need_dx,
                                                               need_dw, opt);
  if (need_dbias) out.dbias = conv2d_bias_grad(dy);
  return out;
}

}  // namespace dd::kernels::cuda
