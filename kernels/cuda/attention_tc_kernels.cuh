#pragma once
// Device code of the bf16 tensor-core attention (kernels/attention.h's attention_forward_tc /
// attention_backward_tc; attention_tc.cu launches it). Same algorithm as the fp32 flash kernels
// of attention_kernels.cuh, with every matrix product on mma.sync m16n8k16 (bf16 operands, fp32
// accumulation) and the softmax in fp32:
//   forward / stats pass:  a warp owns 16 query rows; S = Q K^T per key tile, online softmax
//                          (running max m, running sum l), O += P V with P kept in registers
//   dK/dV pass:            a warp owns 16 key rows and visits every query tile in order:
//                          S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q
//   dQ pass:               a warp owns 16 query rows and visits every key tile in order:
//                          S = Q K^T, dP = dO V^T, dQ += dS K
// so every sum runs in a fixed order, with no atomics: results repeat bitwise run to run.
//
// Operands are rounded once to bf16 (nearest even) as fp32 rows are staged to shared memory;
// P and dS are rounded the same way as they go from the fp32 accumulator fragment straight into
// the next mma's A fragment (the C layout of two n8 tiles is the A layout of one k16 step, so
// they never touch shared memory). The forward's row sum l adds the unrounded fp32 P.
//
// Shared tiles are [rows][kD + 8] bf16: a row is 2 kD + 16 bytes, 16-byte aligned for ldmatrix,
// and an odd number of 16-byte units (5, 9, 17 for kD = 32, 64, 128); the 128 bytes of the 32
// banks hold 8 units, and an odd stride visits all 8 residues, so the 8 rows of one ldmatrix
// phase land on distinct 4-bank groups (no conflicts, no swizzle). Rows past N are staged as zeros: keys past N are
// then masked to -inf (forward, dQ) or have P forced to 0 (dK/dV), and their zero V and dO rows
// keep 0 * x finite.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/dtype.h"
#include "kernels/cuda/warp_ops.cuh"

namespace dd::kernels::cuda::attn_tc {

struct Params {
  const float* qkv;  // [B, N, 3 * hidden]
  const float* dy;   // [B, N, hidden] (backward only)
  float* out;        // forward: [B, N, hidden]; backward: d_qkv [B, N, 3 * hidden]
  float* row_max;    // [B * heads, N]: the backward's stats (max of the scaled logits)
  float* row_inv;    // [B * heads, N]: 1 / sum_j exp(s_ij - m_i)
  float* row_delta;  // [B * heads, N]: sum_c dO_ic O_ic
  int64_t N, C, hidden;
  int64_t tiles;  // row blocks per (batch, head) of the launch at hand (the host sets it per kernel)
  int heads, d;
  float scale;
};

// Tile sizes per head width, chosen so that each kernel's static shared memory stays under
// 48 KB and its accumulators fit in registers without spilling (scripts/ptxas_attention_tc.sh).
template <int kD>
struct Tiles {
  static_assert(kD == 32 || kD == 64 || kD == 128, "dim_head 32, 64 or 128");
  static constexpr int kLd = kD + 8;  // padded shared row, in bf16 elements
  // Forward and stats: 4 warps x 16 query rows; key tiles of kFwdKeys.
  static constexpr int kFwdWarps = 4, kFwdRows = 16 * kFwdWarps;
  static constexpr int kFwdKeys = kD <= 64 ? 64 : 32;
  // dK/dV and dQ: warps x 16 owned rows; the other side streams in tiles of kBwdCols. At kD = 128
  // each warp holds two 16 x 128 fp32 accumulators (dK, dV: 128 registers), hence the narrower tiles.
  static constexpr int kBwdWarps = kD <= 64 ? 4 : 2, kBwdRows = 16 * kBwdWarps;
  static constexpr int kBwdCols = kD <= 64 ? 64 : 32;
};

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return uint32_t(dtype_conv::f32_to_bf16(lo)) | (uint32_t(dtype_conv::f32_to_bf16(hi)) << 16);
}

__device__ __forceinline__ float round_bf16(float x) { return dtype_conv::bf16_to_f32(dtype_conv::f32_to_bf16(x)); }

// An operand element as fp32: an fp32 one as stored, a bf16 one (uint16_t bits) widened exactly.
__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const uint16_t* p) { return dtype_conv::bf16_to_f32(*p); }

// dst[r][c] = bf16(src[(n0 + r) * stride + c]) for n0 + r < N, zeros for the rows past N. Each
// thread converts 8 consecutive columns and stores them as one 16-byte word. src fp32, or bf16
// (TS uint16_t: its bits pass through, as rounding a bf16 value leaves it).
template <int kD, int kRows, class TS>
__device__ __forceinline__ void stage_rows(uint16_t (*dst)[kD + 8], const TS* src, int64_t stride, int64_t n0,
                                           int64_t N) {
  constexpr int kGroups = kD / 8;
  for (int idx = threadIdx.x; idx < kRows * kGroups; idx += blockDim.x) {
    const int r = idx / kGroups, c = (idx % kGroups) * 8;
    uint32_t w[4] = {0u, 0u, 0u, 0u};
    if (n0 + r < N) {
      const TS* s = src + (n0 + r) * stride + c;
      for (int j = 0; j < 4; ++j) w[j] = pack_bf16x2(load_f32(s + 2 * j), load_f32(s + 2 * j + 1));
    }
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<uint4*>(&dst[r][c]) = make_uint4(w[0], w[1], w[2], w[3]);
#else
    std::memcpy(&dst[r][c], w, sizeof w);  // host emulation: no type punning for g++'s aliasing rules
#endif
  }
}

// ---- fragments (layouts: warp_ops.cuh's header) ---------------------------------------------

// A (16 x 16) of rows r0.., columns k0.. of a row-major tile.
template <int kLd>
__device__ __forceinline__ void frag_a(const uint16_t (*t)[kLd], int r0, int k0, int lane, uint32_t (&a)[4]) {
  warp::ldmatrix_x4(a, &t[r0 + (lane & 15)][k0 + ((lane >> 4) << 3)]);
}

// B of two n8 tiles (columns n0..n0+15), reduction k0..k0+15, from a tile stored [n][k] (B^T
// row-major: K for S = Q K^T, Q for S^T = K Q^T, V and dO for dP).
template <int kLd>
__device__ __forceinline__ void frag_b_nk(const uint16_t (*t)[kLd], int n0, int k0, int lane, uint32_t (&b0)[2],
                                          uint32_t (&b1)[2]) {
  uint32_t r[4];
  warp::ldmatrix_x4(r, &t[n0 + (lane & 7) + ((lane >> 4) << 3)][k0 + (((lane >> 3) & 1) << 3)]);
  b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
}

// The same from a tile stored [k][n] (B row-major: V for P V, dO for P^T dO, Q for dS^T Q, K for
// dS K), through ldmatrix .trans.
template <int kLd>
__device__ __forceinline__ void frag_b_kn(const uint16_t (*t)[kLd], int k0, int n0, int lane, uint32_t (&b0)[2],
                                          uint32_t (&b1)[2]) {
  uint32_t r[4];
  warp::ldmatrix_x4_trans(r, &t[k0 + (lane & 7) + (((lane >> 3) & 1) << 3)][n0 + ((lane >> 4) << 3)]);
  b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
}

// The A fragment of k-step kc of a product whose left operand is an accumulator held as n8
// tiles x[2 kc], x[2 kc + 1] (16 x 16 of it), rounded to bf16.
template <int kN>
__device__ __forceinline__ void frag_a_from_acc(const float (&x)[kN][4], int kc, uint32_t (&a)[4]) {
  a[0] = pack_bf16x2(x[2 * kc][0], x[2 * kc][1]);
  a[1] = pack_bf16x2(x[2 * kc][2], x[2 * kc][3]);
  a[2] = pack_bf16x2(x[2 * kc + 1][0], x[2 * kc + 1][1]);
  a[3] = pack_bf16x2(x[2 * kc + 1][2], x[2 * kc + 1][3]);
}

// acc[n] (n8 tiles 0..kN-1) += A(16 x kD, rows r0.. of ta) B(kD x 8 kN) with B stored [n][k] in tb.
template <int kD, int kN>
__device__ __forceinline__ void gemm_a_bnk(float (&acc)[kN][4], const uint16_t (*ta)[kD + 8], int r0,
                                           const uint16_t (*tb)[kD + 8], int lane) {
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    uint32_t a[4];
    frag_a<kD + 8>(ta, r0, 16 * kk, lane, a);
#pragma unroll
    for (int n = 0; n < kN; n += 2) {
      uint32_t b0[2], b1[2];
      frag_b_nk<kD + 8>(tb, 8 * n, 16 * kk, lane, b0, b1);
      warp::mma_m16n8k16_bf16(acc[n], a, b0, acc[n]);
      warp::mma_m16n8k16_bf16(acc[n + 1], a, b1, acc[n + 1]);
    }
  }
}

// acc (16 x kD) += X (16 x 8 kN, an accumulator) B (8 kN x kD) with B stored [k][n] in tb.
template <int kD, int kN>
__device__ __forceinline__ void gemm_acc_bkn(float (&acc)[kD / 8][4], const float (&x)[kN][4],
                                             const uint16_t (*tb)[kD + 8], int lane) {
#pragma unroll
  for (int kc = 0; kc < kN / 2; ++kc) {
    uint32_t a[4];
    frag_a_from_acc(x, kc, a);
#pragma unroll
    for (int n = 0; n < kD / 8; n += 2) {
      uint32_t b0[2], b1[2];
      frag_b_kn<kD + 8>(tb, 16 * kc, 8 * n, lane, b0, b1);
      warp::mma_m16n8k16_bf16(acc[n], a, b0, acc[n]);
      warp::mma_m16n8k16_bf16(acc[n + 1], a, b1, acc[n + 1]);
    }
  }
}

// Sum over the 4 lanes of a quad (the lanes holding one accumulator row), in a fixed order.
__device__ __forceinline__ float quad_sum(float x) {
  x += warp::shfl_xor_sync(warp::kFullMask, x, 1);
  return x + warp::shfl_xor_sync(warp::kFullMask, x, 2);
}
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, warp::shfl_xor_sync(warp::kFullMask, x, 1));
  return fmaxf(x, warp::shfl_xor_sync(warp::kFullMask, x, 2));
}

// ---- kernels --------------------------------------------------------------------------------
// In every kernel lane (g = lane / 4, t = lane % 4) of a warp holds accumulator rows g and g + 8
// of the warp's 16 (element e of an n8 tile: row g + 8 (e / 2), column 2 t + e % 2).

// kStats = false: the forward, writing out. kStats = true: the backward's first pass, writing
// row_max, row_inv and row_delta (delta from the bf16-rounded dO, as the other passes see it).
template <int kD, bool kStats>
__global__ void __launch_bounds__(32 * Tiles<kD>::kFwdWarps) attention_tc_rows_kernel(Params p) {
  using T = Tiles<kD>;
  constexpr int BQ = T::kFwdRows, BK = T::kFwdKeys, NS = BK / 8, NO = kD / 8;
  __shared__ __align__(16) uint16_t qs[BQ][kD + 8];
  __shared__ __align__(16) uint16_t ks[BK][kD + 8];
  __shared__ __align__(16) uint16_t vs[BK][kD + 8];

  const int64_t bh = blockIdx.x / p.tiles, i0 = (blockIdx.x % p.tiles) * BQ;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const float* base = p.qkv + b * p.N * p.C + h * p.d;
  const int lane = threadIdx.x % 32, r0 = (threadIdx.x / 32) * 16, g = lane >> 2, tq = lane & 3;

  stage_rows<kD, BQ>(qs, base, p.C, i0, p.N);
  float o[NO][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this lane's columns only

  for (int64_t j0 = 0; j0 < p.N; j0 += BK) {
    __syncthreads();  // every warp is done with the previous K, V tile
    stage_rows<kD, BK>(ks, base + p.hidden, p.C, j0, p.N);
    stage_rows<kD, BK>(vs, base + 2 * p.hidden, p.C, j0, p.N);
    __syncthreads();
    float s[NS][4] = {};
    gemm_a_bnk<kD, NS>(s, qs, r0, ks, lane);

    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool key = j0 + 8 * n + 2 * tq + (e & 1) < p.N;
        s[n][e] = key ? s[n][e] * p.scale : -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], s[n][e]);
      }
    // Key j0 < N is real, so each row's new max is finite; exp(-inf - max) = 0 on the first tile.
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = quad_max(mx[r]);
      alpha[r] = expf(m[r] - mx[r]);
      l[r] *= alpha[r];
      m[r] = mx[r];
    }
#pragma unroll
    for (int n = 0; n < NO; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[n][e] *= alpha[e >> 1];
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = expf(s[n][e] - m[e >> 1]);
        l[e >> 1] += s[n][e];
      }
    gemm_acc_bkn<kD, NS>(o, s, vs, lane);
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) inv[r] = 1.0f / quad_sum(l[r]);
  if constexpr (!kStats) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t i = i0 + r0 + g + 8 * r;
      if (i >= p.N) continue;
      float* dst = p.out + (b * p.N + i) * p.hidden + h * p.d;
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        dst[8 * n + 2 * tq] = o[n][2 * r] * inv[r];
        dst[8 * n + 2 * tq + 1] = o[n][2 * r + 1] * inv[r];
      }
    }
  } else {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t i = i0 + r0 + g + 8 * r;
      const bool valid = i < p.N;  // every lane still joins the quad sum below
      const float* dO = p.dy + (b * p.N + (valid ? i : 0)) * p.hidden + h * p.d;
      float delta = 0.0f;
#pragma unroll
      for (int n = 0; n < NO; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (valid) delta += round_bf16(dO[8 * n + 2 * tq + e]) * (o[n][2 * r + e] * inv[r]);
      delta = quad_sum(delta);
      if (valid && tq == 0) {
        const int64_t row = bh * p.N + i;
        p.row_max[row] = m[r];
        p.row_inv[row] = inv[r];
        p.row_delta[row] = delta;
      }
    }
  }
}

// dV_j = sum_i P_ij dO_i, dK_j = scale sum_i dS_ij q_i, dS_ij = P_ij (dP_ij - delta_i). The block
// owns key rows and visits the query tiles in order.
template <int kD>
__global__ void __launch_bounds__(32 * Tiles<kD>::kBwdWarps) attention_tc_dkdv_kernel(Params p) {
  using T = Tiles<kD>;
  constexpr int BR = T::kBwdRows, BC = T::kBwdCols, NS = BC / 8, NO = kD / 8;
  __shared__ __align__(16) uint16_t ks[BR][kD + 8];
  __shared__ __align__(16) uint16_t vs[BR][kD + 8];
  __shared__ __align__(16) uint16_t qs[BC][kD + 8];
  __shared__ __align__(16) uint16_t gs[BC][kD + 8];  // dO
  __shared__ float ms[BC], ls[BC], ds[BC];

  const int64_t bh = blockIdx.x / p.tiles, j0 = (blockIdx.x % p.tiles) * BR;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const float* base = p.qkv + b * p.N * p.C + h * p.d;
  const float* gbase = p.dy + b * p.N * p.hidden + h * p.d;
  const int lane = threadIdx.x % 32, r0 = (threadIdx.x / 32) * 16, g = lane >> 2, tq = lane & 3;

  stage_rows<kD, BR>(ks, base + p.hidden, p.C, j0, p.N);
  stage_rows<kD, BR>(vs, base + 2 * p.hidden, p.C, j0, p.N);
  float dk[NO][4] = {}, dv[NO][4] = {};

  for (int64_t i0 = 0; i0 < p.N; i0 += BC) {
    __syncthreads();
    stage_rows<kD, BC>(qs, base, p.C, i0, p.N);
    stage_rows<kD, BC>(gs, gbase, p.hidden, i0, p.N);
    for (int t = threadIdx.x; t < BC; t += blockDim.x) {
      const bool in = i0 + t < p.N;
      ms[t] = in ? p.row_max[bh * p.N + i0 + t] : 0.0f;
      ls[t] = in ? p.row_inv[bh * p.N + i0 + t] : 0.0f;
      ds[t] = in ? p.row_delta[bh * p.N + i0 + t] : 0.0f;
    }
    __syncthreads();
    float s[NS][4] = {}, dp[NS][4] = {};  // S^T, dP^T: 16 keys x BC queries
    gemm_a_bnk<kD, NS>(s, ks, r0, qs, lane);
    gemm_a_bnk<kD, NS>(dp, vs, r0, gs, lane);
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = 8 * n + 2 * tq + (e & 1);  // query i0 + c
        const float pij = i0 + c < p.N ? expf(s[n][e] * p.scale - ms[c]) * ls[c] : 0.0f;
        s[n][e] = pij;
        dp[n][e] = pij * (dp[n][e] - ds[c]);
      }
    gemm_acc_bkn<kD, NS>(dv, s, gs, lane);
    gemm_acc_bkn<kD, NS>(dk, dp, qs, lane);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = j0 + r0 + g + 8 * r;
    if (j >= p.N) continue;
    float* dst = p.out + (b * p.N + j) * p.C + h * p.d;
#pragma unroll
    for (int n = 0; n < NO; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        dst[p.hidden + 8 * n + 2 * tq + e] = dk[n][2 * r + e] * p.scale;
        dst[2 * p.hidden + 8 * n + 2 * tq + e] = dv[n][2 * r + e];
      }
  }
}

// dQ_i = scale sum_j dS_ij k_j; the block owns query rows and visits the key tiles in order.
template <int kD>
__global__ void __launch_bounds__(32 * Tiles<kD>::kBwdWarps) attention_tc_dq_kernel(Params p) {
  using T = Tiles<kD>;
  constexpr int BR = T::kBwdRows, BC = T::kBwdCols, NS = BC / 8, NO = kD / 8;
  __shared__ __align__(16) uint16_t qs[BR][kD + 8];
  __shared__ __align__(16) uint16_t gs[BR][kD + 8];
  __shared__ __align__(16) uint16_t ks[BC][kD + 8];
  __shared__ __align__(16) uint16_t vs[BC][kD + 8];

  const int64_t bh = blockIdx.x / p.tiles, i0 = (blockIdx.x % p.tiles) * BR;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const float* base = p.qkv + b * p.N * p.C + h * p.d;
  const int lane = threadIdx.x % 32, r0 = (threadIdx.x / 32) * 16, g = lane >> 2, tq = lane & 3;

  stage_rows<kD, BR>(qs, base, p.C, i0, p.N);
  stage_rows<kD, BR>(gs, p.dy + b * p.N * p.hidden + h * p.d, p.hidden, i0, p.N);
  float m[2], inv[2], delta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = i0 + r0 + g + 8 * r;
    const bool valid = i < p.N;  // rows past N: P = exp(0) * 0 = 0
    m[r] = valid ? p.row_max[bh * p.N + i] : 0.0f;
    inv[r] = valid ? p.row_inv[bh * p.N + i] : 0.0f;
    delta[r] = valid ? p.row_delta[bh * p.N + i] : 0.0f;
  }
  float dq[NO][4] = {};

  for (int64_t j0 = 0; j0 < p.N; j0 += BC) {
    __syncthreads();
    stage_rows<kD, BC>(ks, base + p.hidden, p.C, j0, p.N);
    stage_rows<kD, BC>(vs, base + 2 * p.hidden, p.C, j0, p.N);
    __syncthreads();
    float s[NS][4] = {}, dp[NS][4] = {};
    gemm_a_bnk<kD, NS>(s, qs, r0, ks, lane);
    gemm_a_bnk<kD, NS>(dp, gs, r0, vs, lane);
#pragma unroll
    for (int n = 0; n < NS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const bool key = j0 + 8 * n + 2 * tq + (e & 1) < p.N;
        const float pij = key ? expf(s[n][e] * p.scale - m[r]) * inv[r] : 0.0f;
        dp[n][e] = pij * (dp[n][e] - delta[r]);
      }
    gemm_acc_bkn<kD, NS>(dq, dp, ks, lane);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = i0 + r0 + g + 8 * r;
    if (i >= p.N) continue;
    float* dst = p.out + (b * p.N + i) * p.C + h * p.d;
#pragma unroll
    for (int n = 0; n < NO; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) dst[8 * n + 2 * tq + e] = dq[n][2 * r + e] * p.scale;
  }
}

}  // namespace dd::kernels::cuda::attn_tc
