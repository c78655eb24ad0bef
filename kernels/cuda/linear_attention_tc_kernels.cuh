#pragma once
// Device code of linear attention on bf16 tensor cores (kernels/linear_attention.h:
// linear_attention_forward_tc / backward_tc), the BF16 path of kernels::cuda::linear_attention_*
// at dim_head 32 and 64. Same two kernels per direction as the fp32 path
// (linear_attention_kernels.cuh, whose Params and scratch layout it shares), with every product
// on mma.sync m16n8k16 (bf16 operands, fp32 accumulation); softmaxes, statistics and the
// elementwise steps stay fp32:
//   head kernel (4 warps per (batch, head)): the column softmax of k kept online over tiles of
//     positions, context = exp(k - M)^T V (each warp owns a 16-row strip of the kD x kD result,
//     rows rescaled when a tile raises the column max) and, backward, dcontext = S^T G;
//   rows kernel (a warp per 16 positions): out = scale S context, or the backward's
//     dQ' = G context^T, dK' = V dcontext^T and dv = K' dcontext.
// Operands rounded to bf16: q, k, v and dy as they are staged (the CPU backend rounds the same
// inputs under BF16: kernels/cpu/operand_rounding.h; a bf16 qkv, TQ uint16_t, is read as it is),
// and the intermediate operands exp(k - M), S, K', context and dcontext on their way into an mma
// (tests/support/linear_attention_tc_bounds.h bounds what that adds). Every sum runs in a fixed order: results repeat bitwise run to run.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/attention_tc_kernels.cuh"
#include "kernels/cuda/linear_attention_kernels.cuh"

namespace dd::kernels::cuda::linattn_tc {

using linattn::Params;

constexpr int kHeadThreads = 128;
// __launch_bounds__ occupancy hints: 2 head blocks an SM (a cap of 255 registers; without a hint
// ptxas capped the backward near 128-168 and spilled 4-48 bytes, and the head kernel has only
// B x heads blocks anyway), 4 rows blocks (255 at dim_head 64, 128 at 32). Figures:
// scripts/ptxas_attention_tc.sh, recorded in linear_attention_tc.cu.
constexpr int kHeadMinBlocks = 2, kRowsMinBlocks = 4;

template <int kD>
struct Tiles {
  static_assert(kD == 32 || kD == 64, "dim_head 32 or 64");
  // bf16 rows of kD + 8 (an odd number of 16-byte units: ldmatrix's 8 rows hit distinct banks, as
  // in attention_tc_kernels.cuh); fp32 rows of kD + 1 (a thread walking its own row meets no other).
  static constexpr int kLd = kD + 8, kF = kD + 1;
  // Head kernel: positions per tile, so that the backward's six tiles stay under 48 KB (37, 35 KB).
  static constexpr int kT = 2048 / kD;
  // The context's kD x kD as m16 x n8 tiles over 4 warps: a warp owns rows m0..m0+15 and kN n8
  // tiles (kD 32: 2 warps per row strip, 2 tiles each; kD 64: a strip each, 8 tiles).
  static constexpr int kMT = kD / 16, kWarpsPerStrip = 4 / kMT, kN = kD / 8 / kWarpsPerStrip;
  // Rows kernel: 16 positions a warp; 2 warps at kD 64 keep the backward's tiles at 36 KB.
  static constexpr int kRowWarps = kD == 32 ? 4 : 2, kRows = 16 * kRowWarps;
};

__device__ __forceinline__ uint16_t to_bf16(float x) { return dtype_conv::f32_to_bf16(x); }

// A (16 x 16), rows m0.. (columns of t), reduction k0.. (rows of t), from a tile stored [k][m]:
// matrices 0..3 are (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15), each read
// transposed.
template <int kLd>
__device__ __forceinline__ void frag_a_km(const uint16_t (*t)[kLd], int k0, int m0, int lane, uint32_t (&a)[4]) {
  const int q = lane >> 3;
  warp::ldmatrix_x4_trans(a, &t[k0 + (lane & 7) + ((q >> 1) << 3)][m0 + ((q & 1) << 3)]);
}

// acc (16 x 8 kN) += A^T B over a tile's kT positions: A stored [k][m] (rows m0.. of the product
// are its columns), B stored [k][n] (columns n0..).
template <int kT, int kLd, int kN>
__device__ __forceinline__ void tile_product(float (&acc)[kN][4], const uint16_t (*ta)[kLd], const uint16_t (*tb)[kLd],
                                             int m0, int n0, int lane) {
#pragma unroll
  for (int kk = 0; kk < kT / 16; ++kk) {
    uint32_t a[4];
    frag_a_km<kLd>(ta, 16 * kk, m0, lane, a);
#pragma unroll
    for (int n = 0; n < kN; n += 2) {
      uint32_t b0[2], b1[2];
      attn_tc::frag_b_kn<kLd>(tb, 16 * kk, n0 + 8 * n, lane, b0, b1);
      warp::mma_m16n8k16_bf16(acc[n], a, b0, acc[n]);
      warp::mma_m16n8k16_bf16(acc[n + 1], a, b1, acc[n + 1]);
    }
  }
}

// acc (16 x 8 kN) += A (16 x kD, rows r0.. of ta) B (kD x 8 kN) with B stored [k][n] in tb.
template <int kD, int kN>
__device__ __forceinline__ void gemm_a_bkn(float (&acc)[kN][4], const uint16_t (*ta)[kD + 8], int r0,
                                           const uint16_t (*tb)[kD + 8], int lane) {
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    uint32_t a[4];
    attn_tc::frag_a<kD + 8>(ta, r0, 16 * kk, lane, a);
#pragma unroll
    for (int n = 0; n < kN; n += 2) {
      uint32_t b0[2], b1[2];
      attn_tc::frag_b_kn<kD + 8>(tb, 16 * kk, 8 * n, lane, b0, b1);
      warp::mma_m16n8k16_bf16(acc[n], a, b0, acc[n]);
      warp::mma_m16n8k16_bf16(acc[n + 1], a, b1, acc[n + 1]);
    }
  }
}

// qkv as the kernels read it: fp32 (TQ float) or bf16 (TQ uint16_t, Params::qkv_bf). Either way
// each element is rounded to bf16 as it is staged, so both give the same bits.
template <class TQ>
__device__ __forceinline__ const TQ* qkv_of(const Params& p) {
  if constexpr (std::is_same_v<TQ, float>)
    return p.qkv;
  else
    return p.qkv_bf;
}

// dst[j][c] = the bf16 value of src[(n0 + j) * stride + c] as fp32, zeros for rows past N. A
// compile-time trip count: every load of a thread is issued before the first store.
template <int kD, int kRows, int kThreads, class TS>
__device__ __forceinline__ void stage_rounded(float (*dst)[kD + 1], const TS* src, int64_t stride, int64_t n0,
                                              int64_t N) {
  static_assert((kRows * kD) % kThreads == 0, "whole strides");
  constexpr int kIt = kRows * kD / kThreads;
  float v[kIt];
#pragma unroll
  for (int it = 0; it < kIt; ++it) {
    const int idx = static_cast<int>(threadIdx.x) + it * kThreads, j = idx / kD, c = idx % kD;
    v[it] = n0 + j < N ? attn_tc::load_f32(src + (n0 + j) * stride + c) : 0.0f;
  }
#pragma unroll
  for (int it = 0; it < kIt; ++it) {
    const int idx = static_cast<int>(threadIdx.x) + it * kThreads, j = idx / kD, c = idx % kD;
    dst[j][c] = attn_tc::round_bf16(v[it]);
  }
}

// A kD x kD bf16 matrix (row-major, 16-byte aligned) into a [kD][kD + 8] shared tile, 16 bytes a
// thread at a time, every load issued before the first store.
template <int kD, int kThreads>
__device__ __forceinline__ void stage_matrix(uint16_t (*dst)[kD + 8], const uint16_t* src) {
  constexpr int kRow = kD / 8, kIt = kD * kRow / kThreads;
  static_assert(kD * kRow % kThreads == 0, "whole strides");
  uint4 v[kIt];
#pragma unroll
  for (int it = 0; it < kIt; ++it) {
    const int idx = static_cast<int>(threadIdx.x) + it * kThreads;
#if defined(__CUDA_ARCH__)
    v[it] = reinterpret_cast<const uint4*>(src)[idx];
#else
    std::memcpy(&v[it], src + 8 * idx, sizeof(uint4));  // host emulation: no type punning
#endif
  }
#pragma unroll
  for (int it = 0; it < kIt; ++it) {
    const int idx = static_cast<int>(threadIdx.x) + it * kThreads;
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<uint4*>(&dst[idx / kRow][8 * (idx % kRow)]) = v[it];
#else
    std::memcpy(&dst[idx / kRow][8 * (idx % kRow)], &v[it], sizeof(uint4));
#endif
  }
}

// In place over one fp32 row, shared by kLanes adjacent lanes (h: this lane's place among them,
// each taking kD / kLanes consecutive features): softmax over the row's kD features
// (max-subtracted, as the CPU's), and the bf16 of each result into out unless null. The lanes
// combine their maxima and sums by an xor tree: each lane ends with the same bits.
template <int kD, int kLanes>
__device__ __forceinline__ void softmax_row_lanes(float* row, uint16_t* out, int h) {
  constexpr int kW = kD / kLanes;
  float* r = row + h * kW;
  float m = -INFINITY;
  for (int c = 0; c < kW; ++c) m = fmaxf(m, r[c]);
#pragma unroll
  for (int o = 1; o < kLanes; o <<= 1) m = fmaxf(m, warp::shfl_xor_sync(warp::kFullMask, m, o));
  float s = 0.0f;
  for (int c = 0; c < kW; ++c) {
    r[c] = expf(r[c] - m);
    s += r[c];
  }
#pragma unroll
  for (int o = 1; o < kLanes; o <<= 1) s += warp::shfl_xor_sync(warp::kFullMask, s, o);
  const float inv = 1.0f / s;
  for (int c = 0; c < kW; ++c) {
    r[c] *= inv;
    if (out) out[h * kW + c] = to_bf16(r[c]);
  }
}

// One block per (batch, head): k's column max M and 1 / sum_n exp(k - M), context and
// (kBackward) dcontext = scale S^T G, one pass over the positions. A tile's k, v (q, dy) are loaded
// into registers while the previous tile is multiplied. When a tile raises M[c], the context rows
// c summed so far (and the column sum) are scaled by exp(M_old - M_new), as the fp32 kernel does.
template <int kD, bool kBackward, class TQ = float>
__global__ void __launch_bounds__(kHeadThreads, kHeadMinBlocks) linear_attention_tc_head_kernel(Params p) {
  using T = Tiles<kD>;
  constexpr int kT = T::kT, kLd = T::kLd, kF = T::kF, kN = T::kN;
  constexpr int kGroups = kHeadThreads / kD;  // row groups of a column (statistics)
  constexpr int kL = kT * kD / kHeadThreads;  // tile elements a thread loads per operand
  static_assert((kT * kD) % kHeadThreads == 0 && kT % 16 == 0, "whole tiles");
  __shared__ float kf[kT][kF];                   // k (bf16 values)
  __shared__ __align__(16) uint16_t ks[kT][kLd];  // exp(k - M): A of the context, stored [k][m]
  __shared__ __align__(16) uint16_t vs[kT][kLd];  // v: B, stored [k][n]
  __shared__ float qf[kBackward ? kT : 1][kF];
  __shared__ __align__(16) uint16_t qs[kBackward ? kT : 1][kLd];  // S = softmax_d(q)
  __shared__ __align__(16) uint16_t gs[kBackward ? kT : 1][kLd];
  __shared__ float red[kGroups][kD];
  __shared__ float cmax[kD], csum[kD], cfac[kD];

  const int64_t bh = blockIdx.x;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x, lane = tid % 32, wid = tid / 32, g = lane >> 2, tq = lane & 3;
  const TQ* kbase = qkv_of<TQ>(p) + b * p.N * p.C + h * p.d + p.hidden;
  const float* gbase = kBackward ? p.dy + b * p.N * p.hidden + h * p.d : nullptr;
  const int m0 = 16 * (wid % T::kMT), n0 = 8 * kN * (wid / T::kMT);
  float acc[kN][4] = {}, dacc[kBackward ? kN : 1][4] = {};
  if (tid < kD) cmax[tid] = -INFINITY, csum[tid] = 0.0f;

  // Element i of this thread's share of a tile: row lj + i kGroups, channel lc. Rows past N load
  // k = -inf (exp gives 0) and v, q, dy = 0. Offsets, not pointers, until a row is inside.
  const int lc = tid % kD, lj = tid / kD;
  float rk[kL], rv[kL], rq[kBackward ? kL : 1], rg[kBackward ? kL : 1];
  auto load_tile = [&](int64_t t0) {
    const int64_t n = t0 + lj, ko = n * p.C + lc, go = n * p.hidden + lc;
#pragma unroll
    for (int i = 0; i < kL; ++i) {
      const bool row = n + i * kGroups < p.N;
      const int64_t off = ko + int64_t(i) * kGroups * p.C;
      rk[i] = row ? attn_tc::load_f32(kbase + off) : -INFINITY;
      rv[i] = row ? attn_tc::load_f32(kbase + off + p.hidden) : 0.0f;
      if constexpr (kBackward) {
        rq[i] = row ? attn_tc::load_f32(kbase + off - p.hidden) : 0.0f;
        rg[i] = row ? gbase[go + int64_t(i) * kGroups * p.hidden] : 0.0f;
      }
    }
  };
  load_tile(0);
  for (int64_t t0 = 0; t0 < p.N; t0 += kT) {
    __syncthreads();  // the previous tile's products are done
#pragma unroll
    for (int i = 0; i < kL; ++i) {
      const int j = lj + i * kGroups;
      kf[j][lc] = attn_tc::round_bf16(rk[i]);
      vs[j][lc] = to_bf16(rv[i]);
      if constexpr (kBackward) qf[j][lc] = attn_tc::round_bf16(rq[i]), gs[j][lc] = to_bf16(rg[i]);
    }
    if (t0 + kT < p.N) load_tile(t0 + kT);  // in flight while this tile is computed
    __syncthreads();
    {  // the tile's column max, a row group per thread
      const int c = tid % kD, grp = tid / kD;
      float m = -INFINITY;
      for (int j = grp; j < kT; j += kGroups) m = fmaxf(m, kf[j][c]);
      red[grp][c] = m;
    }
    if constexpr (kBackward) {
      // S over the features, kLanes threads a position (rows past N: q = 0, multiplied by dy = 0).
      constexpr int kLanes = kHeadThreads / kT;
      softmax_row_lanes<kD, kLanes>(qf[tid / kLanes], qs[tid / kLanes], tid % kLanes);
    }
    __syncthreads();
    if (tid < kD) {
      float m = cmax[tid];
      for (int grp = 0; grp < kGroups; ++grp) m = fmaxf(m, red[grp][tid]);
      // A column still all -inf keeps factor 1 (not exp(-inf + inf) = NaN), as the fp32 kernel.
      cfac[tid] = m == -INFINITY ? 1.0f : expf(cmax[tid] - m);
      cmax[tid] = m;
    }
    __syncthreads();
    {  // exp(k - M) into the A tile, its fp32 column sums per row group
      const int c = tid % kD, grp = tid / kD;
      const float m = cmax[c];
      float s = 0.0f;
      for (int j = grp; j < kT; j += kGroups) {
        const float x = m == -INFINITY ? 0.0f : expf(kf[j][c] - m);
        ks[j][c] = to_bf16(x);
        s += x;
      }
      red[grp][c] = s;
    }
    __syncthreads();
    if (tid < kD) {
      float s = csum[tid] * cfac[tid];
      for (int grp = 0; grp < kGroups; ++grp) s += red[grp][tid];
      csum[tid] = s;
    }
    // This warp's rows m0 + g and m0 + g + 8 of the context, rescaled, then the tile's products.
    const float f0 = cfac[m0 + g], f1 = cfac[m0 + g + 8];
#pragma unroll
    for (int n = 0; n < kN; ++n) acc[n][0] *= f0, acc[n][1] *= f0, acc[n][2] *= f1, acc[n][3] *= f1;
    tile_product<kT, kLd, kN>(acc, ks, vs, m0, n0, lane);
    if constexpr (kBackward) tile_product<kT, kLd, kN>(dacc, qs, gs, m0, n0, lane);
  }
  __syncthreads();  // csum holds every tile
  if (tid < kD) {
    const float inv = 1.0f / csum[tid];
    cfac[tid] = inv;
    p.kmax[bh * kD + tid] = cmax[tid];
    p.kinv[bh * kD + tid] = inv;
  }
  __syncthreads();
  // context = acc / S and dcontext = scale dacc, written as bf16 (the rows kernel's operands);
  // backward, also coldot[c] = sum_e context[c, e] dcontext[c, e] from the fp32 values: this
  // lane's columns, its quad's, then the strip's warps in warp order.
  uint32_t* ctx = reinterpret_cast<uint32_t*>(p.ctx_bf + bh * kD * kD);
  uint32_t* dctx = kBackward ? reinterpret_cast<uint32_t*>(p.dctx_bf + bh * kD * kD) : nullptr;
  float cd[2] = {0.0f, 0.0f};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int c = m0 + g + 8 * r;
    const float inv = cfac[c];
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      const int e = n0 + 8 * n + 2 * tq;
      const float c0 = acc[n][2 * r] * inv, c1 = acc[n][2 * r + 1] * inv;
      ctx[(c * kD + e) / 2] = attn_tc::pack_bf16x2(c0, c1);
      if constexpr (kBackward) {
        const float d0 = p.scale * dacc[n][2 * r], d1 = p.scale * dacc[n][2 * r + 1];
        dctx[(c * kD + e) / 2] = attn_tc::pack_bf16x2(d0, d1);
        cd[r] += c0 * d0 + c1 * d1;
      }
    }
  }
  if constexpr (kBackward) {
    static_assert(T::kWarpsPerStrip <= kGroups, "red holds a row per warp of a strip");
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      cd[r] = attn_tc::quad_sum(cd[r]);
      if (tq == 0) red[wid / T::kMT][m0 + g + 8 * r] = cd[r];
    }
    __syncthreads();
    if (tid < kD) {
      float t = 0.0f;
      for (int w = 0; w < T::kWarpsPerStrip; ++w) t += red[w][tid];
      p.coldot[bh * kD + tid] = t;
    }
  }
}

// Rows n0 + r0 + g (+ 8) of a C fragment set to dst (row stride `stride`), times `scale`, columns
// 8 n + 2 tq (+ 1); rows past N skipped.
template <int kN>
__device__ __forceinline__ void store_rows(float* dst, int64_t stride, const float (&acc)[kN][4], int64_t row0,
                                           int64_t N, int g, int tq, float scale) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t n = row0 + g + 8 * r;
    if (n >= N) continue;
#pragma unroll
    for (int j = 0; j < kN; ++j)
      *reinterpret_cast<float2*>(&dst[n * stride + 8 * j + 2 * tq]) =
          make_float2(scale * acc[j][2 * r], scale * acc[j][2 * r + 1]);
  }
}

// store_rows into bf16 (nearest even): the bits of the fp32 values store_rows writes, rounded.
template <int kN>
__device__ __forceinline__ void store_rows_bf16(uint16_t* dst, int64_t stride, const float (&acc)[kN][4],
                                                int64_t row0, int64_t N, int g, int tq, float scale) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t n = row0 + g + 8 * r;
    if (n >= N) continue;
#pragma unroll
    for (int j = 0; j < kN; ++j) {
      const uint32_t pair = attn_tc::pack_bf16x2(scale * acc[j][2 * r], scale * acc[j][2 * r + 1]);
#if defined(__CUDA_ARCH__)
      *reinterpret_cast<uint32_t*>(&dst[n * stride + 8 * j + 2 * tq]) = pair;
#else
      std::memcpy(&dst[n * stride + 8 * j + 2 * tq], &pair, sizeof pair);  // host emulation: no type punning
#endif
    }
  }
}

// kRows positions per block, 16 per warp: the forward output (fp32, or bf16 into p.out_bf when
// set) or (kBackward) their d_qkv rows.
template <int kD, bool kBackward, class TQ = float>
__global__ void __launch_bounds__(32 * Tiles<kD>::kRowWarps, kRowsMinBlocks) linear_attention_tc_rows_kernel(Params p) {
  using T = Tiles<kD>;
  constexpr int kR = T::kRows, kLd = T::kLd, kF = T::kF, kN = kD / 8, kThreads = 32 * T::kRowWarps;
  __shared__ __align__(16) uint16_t cs[kD][kLd];  // context [c][e]
  __shared__ __align__(16) uint16_t dcs[kBackward ? kD : 1][kLd];
  __shared__ float xf[kR][kF];                    // q then S (fp32); backward: then k, then K'
  __shared__ __align__(16) uint16_t ab[kR][kLd];  // the phase's A operand: S, dy, v
  __shared__ __align__(16) uint16_t kb[kBackward ? kR : 1][kLd];  // K'
  __shared__ float kmax[kBackward ? kD : 1], kinv[kBackward ? kD : 1], coldot[kBackward ? kD : 1];

  const int64_t bh = blockIdx.x / p.tiles, n0 = (blockIdx.x % p.tiles) * kR;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x, lane = tid % 32, r0 = (tid / 32) * 16, g = lane >> 2, tq = lane & 3;
  stage_matrix<kD, kThreads>(cs, p.ctx_bf + bh * kD * kD);
  if constexpr (kBackward) {
    stage_matrix<kD, kThreads>(dcs, p.dctx_bf + bh * kD * kD);
    static_assert(kThreads >= kD, "a thread a feature");
    if (tid < kD) {
      kmax[tid] = p.kmax[bh * kD + tid];
      kinv[tid] = p.kinv[bh * kD + tid];
      coldot[tid] = p.coldot[bh * kD + tid];
    }
  }
  const TQ* qrows = qkv_of<TQ>(p) + b * p.N * p.C + h * p.d;  // q of position n: qrows[n * C]
  stage_rounded<kD, kR, kThreads>(xf, qrows, p.C, n0, p.N);
  if constexpr (kBackward)
    attn_tc::stage_rows<kD, kR>(ab, p.dy + b * p.N * p.hidden + h * p.d, p.hidden, n0, p.N);
  __syncthreads();
  // S = softmax_d(q), two threads a row: kept fp32 in xf; the forward's A operand in ab.
  static_assert(kThreads == 2 * kR, "two threads a row");
  softmax_row_lanes<kD, 2>(xf[tid / 2], kBackward ? nullptr : ab[tid / 2], tid % 2);
  __syncthreads();

  float acc[kN][4] = {};
  if constexpr (!kBackward) {
    gemm_a_bkn<kD, kN>(acc, ab, r0, cs, lane);
    const int64_t o = b * p.N * p.hidden + h * p.d;
    if (p.out_bf)
      store_rows_bf16(p.out_bf + o, p.hidden, acc, n0 + r0, p.N, g, tq, p.scale);
    else
      store_rows(p.out + o, p.hidden, acc, n0 + r0, p.N, g, tq, p.scale);
  } else {
    float* drows = p.out + b * p.N * p.C + h * p.d;  // dq of position n: drows[n * C]
    // dQ'[n, c] = sum_e dy[n, e] context[c, e] (B stored [n][k]); dq = scale S (dQ' - sum_c S dQ').
    attn_tc::gemm_a_bnk<kD, kN>(acc, ab, r0, cs, lane);
    float rd[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < kN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) rd[e >> 1] += xf[r0 + g + 8 * (e >> 1)][8 * j + 2 * tq + (e & 1)] * acc[j][e];
    rd[0] = attn_tc::quad_sum(rd[0]), rd[1] = attn_tc::quad_sum(rd[1]);
#pragma unroll
    for (int j = 0; j < kN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        acc[j][e] = xf[r0 + g + 8 * (e >> 1)][8 * j + 2 * tq + (e & 1)] * (acc[j][e] - rd[e >> 1]);
    store_rows(drows, p.C, acc, n0 + r0, p.N, g, tq, p.scale);
    __syncthreads();  // xf and ab are read no more

    // K' = exp(k - M) / sum: fp32 in xf, bf16 in kb (zero rows past N).
    stage_rounded<kD, kR, kThreads>(xf, qrows + p.hidden, p.C, n0, p.N);
    attn_tc::stage_rows<kD, kR>(ab, qrows + 2 * p.hidden, p.C, n0, p.N);
    __syncthreads();
    for (int idx = tid; idx < kR * kD; idx += kThreads) {
      const int j = idx / kD, c = idx % kD;
      const float x = n0 + j < p.N ? expf(xf[j][c] - kmax[c]) * kinv[c] : 0.0f;
      xf[j][c] = x;
      kb[j][c] = to_bf16(x);
    }
    __syncthreads();
    // dK'[n, c] = sum_e v[n, e] dcontext[c, e]; dk = K' (dK' - coldot).
#pragma unroll
    for (int j = 0; j < kN; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    attn_tc::gemm_a_bnk<kD, kN>(acc, ab, r0, dcs, lane);
#pragma unroll
    for (int j = 0; j < kN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = 8 * j + 2 * tq + (e & 1);
        acc[j][e] = xf[r0 + g + 8 * (e >> 1)][c] * (acc[j][e] - coldot[c]);
      }
    store_rows(drows + p.hidden, p.C, acc, n0 + r0, p.N, g, tq, 1.0f);
    // dv[n, e] = sum_c K'[n, c] dcontext[c, e] (B stored [k][n]).
#pragma unroll
    for (int j = 0; j < kN; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    gemm_a_bkn<kD, kN>(acc, kb, r0, dcs, lane);
    store_rows(drows + 2 * p.hidden, p.C, acc, n0 + r0, p.N, g, tq, 1.0f);
  }
}

}  // namespace dd::kernels::cuda::linattn_tc
