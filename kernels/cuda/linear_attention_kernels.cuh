#pragma once
// Device code of linear attention (kernels/linear_attention.h), kept free of
// CUDA runtime calls so that the CPU tests can also run it through
// tests/support/cuda_emulation.h. kernels/cuda/linear_attention.cu launches it.
//
// Two kernels per direction, with S = softmax_d(q) per position, K' =
// softmax_n(k) per feature, Q' = scale S, G = dy:
//   head kernel (one block per (batch, head)): the column max and 1/sum of k
//     over the positions, context = K'^T V and, for the backward,
//     dcontext = Q'^T G, all reduced over N inside the block in one pass (the
//     column softmax kept online) in a fixed order (deterministic, no atomics)
//     and written to a small scratch;
//   rows kernel (one thread per position): out = Q' context, or the backward
//     dq = scale S * (dQ' - rowsum(S * dQ')),  dQ' = G context^T,
//     dk = K' * (dK' - coldot),  dK' = V dcontext^T,  dv = K' dcontext,
//     with coldot[d] = sum_n K'[n, d] dK'[n, d] = sum_e context[d, e] dcontext[d, e].
// dim_head d is padded with zeros up to the template kD (8, 16, 32, 64).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/error.h"

#ifndef DD_UNROLL
#if defined(__CUDA_ARCH__)
#define DD_UNROLL _Pragma("unroll")
#else
#define DD_UNROLL
#endif
#endif
// A partial unroll by n (a literal): enough loads in flight without the registers of a full one.
#if defined(__CUDA_ARCH__)
#define DD_LINATTN_PRAGMA(x) _Pragma(#x)
#define DD_UNROLL_BY(n) DD_LINATTN_PRAGMA(unroll n)
#else
#define DD_UNROLL_BY(n)
#endif

namespace dd::kernels::cuda::linattn {

constexpr int kHeadThreads = 256;
// Rows kernel: threads per block, one position each; 32 at kD 64 keeps its
// shared memory (context, dcontext, a row per thread) under 48 KB.
constexpr int rows_per_block(int kD) { return kD <= 32 ? 64 : 32; }
constexpr int kMaxHeadDim = 64;

// Positions per shared tile in the head kernel: four [tile][kD + 4] tiles stay under 48 KB (42 KB
// at kD 16, the most).
constexpr int tile_rows(int kD) { return 2048 / kD; }

struct Params {
  const float* qkv;  // [B, N, 3 * hidden]
  const float* dy;   // [B, N, hidden] (backward only)
  float* out;        // forward: [B, N, hidden]; backward: d_qkv [B, N, 3 * hidden]
  // Scratch, per (batch, head) bh:
  float* kmax;      // [BH, d]    max_n k[n, c]
  float* kinv;      // [BH, d]    1 / sum_n exp(k[n, c] - kmax[c])
  float* ctx;       // [BH, d, d] context[c, e]
  float* dctx;      // [BH, d, d] dcontext[c, e] (backward only)
  // The bf16 tensor-core path's own (linear_attention_tc_kernels.cuh; null on this one):
  uint16_t* ctx_bf;   // [BH, d, d] context as bf16 (the rows kernel's mma operand)
  uint16_t* dctx_bf;  // [BH, d, d] dcontext as bf16 (backward only)
  float* coldot;      // [BH, d]    sum_e context[c, e] dcontext[c, e] (backward only)
  const uint16_t* qkv_bf;  // qkv as bf16 in place of qkv when set (conv2d_forward_bf16's output)
  uint16_t* out_bf;        // the forward's output as bf16 in place of out when set
  int64_t N, C, hidden;
  int64_t tiles;  // rows-kernel blocks per (batch, head): ceil(N / rows_per_block(kD)), set by plan()
  int heads, d;
  float scale;
};

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// In place over r[0..d): softmax; r[c >= d] stays 0.
template <int kD>
__device__ __forceinline__ void softmax_row(float (&r)[kD], int d) {
  float m = -INFINITY;
  DD_UNROLL
  for (int c = 0; c < kD; ++c)
    if (c < d) m = fmaxf(m, r[c]);
  float s = 0.0f;
  DD_UNROLL
  for (int c = 0; c < kD; ++c) {
    r[c] = c < d ? expf(r[c] - m) : 0.0f;
    s += r[c];
  }
  const float inv = 1.0f / s;
  DD_UNROLL
  for (int c = 0; c < kD; ++c) r[c] *= inv;
}

template <int kD>
__device__ __forceinline__ void load_row(float (&r)[kD], const float* src, bool valid, int d) {
  DD_UNROLL
  for (int c = 0; c < kD; ++c) r[c] = (valid && c < d) ? src[c] : 0.0f;
}

// One block per (batch, head): k's column statistics, context and (kBackward) dcontext, in one
// pass over the positions. The first GPU runs timed the head and rows kernels together at 4-19% of
// the copy bandwidth; this kernel then read k twice (its column statistics, then the context) a
// scalar at a time, waiting out each tile's loads before computing on it. Now a tile's k, v (and
// q, dy) are loaded into registers while the previous tile is computed, and the column softmax of
// k is kept online, as flash attention keeps its row softmax: the running column max M[c] and sum
// S[c] = sum_n exp(k[n, c] - M[c]); when a tile raises M[c], the sums so far are scaled by
// exp(M_old - M_new). At the end K' = exp(k - M) / S: context = (sum_n exp(k - M) v) / S.
// Every sum runs in a fixed order (tiles in order, a tile's rows in order, the row groups of a
// column folded in group order): results repeat bitwise.
template <int kD, bool kBackward>
__global__ void __launch_bounds__(kHeadThreads) linear_attention_head_kernel(Params p) {
  constexpr int kT = tile_rows(kD);
  // Row stride: 16-byte rows from kD 16 on, for the context loop's float4 reads of a row's
  // channels; kD 8 keeps 8 (four [256][12] tiles would pass the 48 KB of static shared memory).
  constexpr int kQ = kD >= 16 ? kD + 4 : kD;
  constexpr int kGroups = kHeadThreads / kD;      // row groups of a column (statistics)
  constexpr int kPer = (kD * kD + kHeadThreads - 1) / kHeadThreads;  // context entries a thread
  constexpr int kL = kT * kD / kHeadThreads;      // tile elements a thread loads per operand
  static_assert(kHeadThreads % kD == 0, "column groups must fill the block");
  static_assert((kT * kD) % kHeadThreads == 0, "the tile load covers whole block strides");
  static_assert(kD * kD < kHeadThreads || kPer * kHeadThreads == kD * kD, "context entries split evenly");
  __shared__ float red[kGroups][kD];
  __shared__ float cmax[kD], csum[kD], cfac[kD];
  __shared__ __align__(16) float ks[kT][kQ];
  __shared__ float vs[kT][kQ];
  __shared__ __align__(16) float qs[kBackward ? kT : 1][kQ];
  __shared__ float gs[kBackward ? kT : 1][kQ];

  const int64_t bh = blockIdx.x;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x;
  const float* base = p.qkv + b * p.N * p.C + h * p.d;
  const float* kbase = base + p.hidden;
  const float* gbase = kBackward ? p.dy + b * p.N * p.hidden + h * p.d : nullptr;

  // This thread's context entries: channels c0 .. c0 + kPer - 1 of k, channel e of v (dy); idle
  // when kD * kD < kHeadThreads leaves it none.
  const int e = tid % kD, c0 = (tid / kD) * kPer;
  const bool owner = tid < kD * kD / kPer;
  float acc[kPer], dacc[kPer];
  DD_UNROLL
  for (int r = 0; r < kPer; ++r) acc[r] = dacc[r] = 0.0f;
  if (tid < kD) cmax[tid] = -INFINITY, csum[tid] = 0.0f;

  // Tile element i of this thread: row lj + i kGroups, channel lc (kHeadThreads is a multiple of
  // kD, so the channel is the same for all). Rows past N load k = -inf (exp gives 0) and v, q, dy
  // = 0; channels past d load 0 (never written out).
  const int lc = tid % kD, lj = tid / kD;
  const bool lc_ok = lc < p.d;
  float rk[kL], rv[kL], rq[kBackward ? kL : 1], rg[kBackward ? kL : 1];
  // Offsets, not pointers, until a row is known to be inside: no address past the tensors is formed.
  auto load_tile = [&](int64_t n0) {
    const int64_t n = n0 + lj, ko = n * p.C + lc, go = n * p.hidden + lc;
    DD_UNROLL
    for (int i = 0; i < kL; ++i) {
      const bool row = n + i * kGroups < p.N, ok = row && lc_ok;
      const int64_t off = ko + int64_t(i) * kGroups * p.C;
      rk[i] = ok ? kbase[off] : (row || !lc_ok ? 0.0f : -INFINITY);
      rv[i] = ok ? kbase[off + p.hidden] : 0.0f;
      if constexpr (kBackward) {
        rq[i] = ok ? kbase[off - p.hidden] : 0.0f;
        rg[i] = ok ? gbase[go + int64_t(i) * kGroups * p.hidden] : 0.0f;
      }
    }
  };
  load_tile(0);
  for (int64_t n0 = 0; n0 < p.N; n0 += kT) {
    const int len = static_cast<int>(min64(kT, p.N - n0));
    __syncthreads();  // the previous tile is consumed
    DD_UNROLL
    for (int i = 0; i < kL; ++i) {
      const int j = lj + i * kGroups;
      ks[j][lc] = rk[i];
      vs[j][lc] = rv[i];
      if constexpr (kBackward) qs[j][lc] = rq[i], gs[j][lc] = rg[i];
    }
    if (n0 + kT < p.N) load_tile(n0 + kT);  // in flight while this tile is computed
    __syncthreads();
    {  // The tile's column max, a row group per thread.
      const int c = tid % kD, grp = tid / kD;
      float m = -INFINITY;
      for (int j = grp; j < kT; j += kGroups) m = fmaxf(m, ks[j][c]);
      red[grp][c] = m;
    }
    if constexpr (kBackward) {
      // q -> softmax over the features, one position per thread (rows past N stay zero rows of
      // dy, whatever their softmax).
      for (int j = tid; j < len; j += kHeadThreads) {
        float m = -INFINITY;
        for (int c = 0; c < p.d; ++c) m = fmaxf(m, qs[j][c]);
        float s = 0.0f;
        for (int c = 0; c < p.d; ++c) {
          qs[j][c] = expf(qs[j][c] - m);
          s += qs[j][c];
        }
        const float inv = 1.0f / s;
        for (int c = 0; c < p.d; ++c) qs[j][c] *= inv;
      }
    }
    __syncthreads();
    if (tid < kD) {  // the running max; the factor that rescales what was summed under the old one
      float m = cmax[tid];
      for (int grp = 0; grp < kGroups; ++grp) m = fmaxf(m, red[grp][tid]);
      // exp(-inf) = 0 at the first tile; a column still all -inf (k = -inf so far) keeps factor 1
      // rather than exp(-inf + inf) = NaN, so later finite rows start from clean sums.
      cfac[tid] = m == -INFINITY ? 1.0f : expf(cmax[tid] - m);
      cmax[tid] = m;
    }
    __syncthreads();
    {  // k -> exp(k - M), and its column sums per row group.
      const int c = tid % kD, grp = tid / kD;
      const float m = cmax[c];
      float s = 0.0f;
      for (int j = grp; j < kT; j += kGroups) {
        const float x = m == -INFINITY ? 0.0f : expf(ks[j][c] - m);
        ks[j][c] = x;
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
    if (owner) {
      // context[c][e] (scaled like the column sums) and dcontext[c][e] = sum_j S[j][c] dy[j][e].
      // The thread's kPer channels are consecutive: float4 reads of ks and qs rows from kPer 4 on.
      DD_UNROLL
      for (int r = 0; r < kPer; ++r) acc[r] *= cfac[c0 + r];
      for (int j = 0; j < len; ++j) {
        const float v = vs[j][e];
        const float g = kBackward ? gs[j][e] : 0.0f;
        if constexpr (kPer % 4 == 0 && kQ % 4 == 0) {
          DD_UNROLL
          for (int r = 0; r < kPer; r += 4) {
            const float4 k4 = *reinterpret_cast<const float4*>(&ks[j][c0 + r]);
            acc[r] += k4.x * v, acc[r + 1] += k4.y * v, acc[r + 2] += k4.z * v, acc[r + 3] += k4.w * v;
            if constexpr (kBackward) {
              const float4 q4 = *reinterpret_cast<const float4*>(&qs[j][c0 + r]);
              dacc[r] += q4.x * g, dacc[r + 1] += q4.y * g, dacc[r + 2] += q4.z * g, dacc[r + 3] += q4.w * g;
            }
          }
        } else {
          DD_UNROLL
          for (int r = 0; r < kPer; ++r) {
            acc[r] += ks[j][c0 + r] * v;
            if constexpr (kBackward) dacc[r] += qs[j][c0 + r] * g;
          }
        }
      }
    }
  }
  __syncthreads();  // csum holds every tile
  if (tid < kD) {
    const float inv = 1.0f / csum[tid];
    cfac[tid] = inv;
    if (tid < p.d) {
      p.kmax[bh * p.d + tid] = cmax[tid];
      p.kinv[bh * p.d + tid] = inv;
    }
  }
  __syncthreads();
  float* ctx = p.ctx + bh * p.d * p.d;
  float* dctx = kBackward ? p.dctx + bh * p.d * p.d : nullptr;
  if (owner && e < p.d) {
    DD_UNROLL
    for (int r = 0; r < kPer; ++r) {
      const int c = c0 + r;
      if (c < p.d) {
        ctx[c * p.d + e] = acc[r] * cfac[c];
        if constexpr (kBackward) dctx[c * p.d + e] = p.scale * dacc[r];
      }
    }
  }
}

// acc[i] += a row[i] for i < kD, row 16-byte aligned: four products from each 16-byte read.
template <int kD>
__device__ __forceinline__ void add_scaled_row(float (&acc)[kD], float a, const float* row) {
  DD_UNROLL
  for (int i = 0; i < kD; i += 4) {
    const float4 w = *reinterpret_cast<const float4*>(row + i);
    acc[i] += a * w.x, acc[i + 1] += a * w.y, acc[i + 2] += a * w.z, acc[i + 3] += a * w.w;
  }
}

// Rows [n0, n0 + kR) of one head's d columns of a row-major matrix (row stride `stride`, src at
// the head's first column) into buf, zeros past N and past d. Consecutive threads take
// consecutive columns of a row, so a warp reads whole 128-byte segments; a thread reading the
// row of its own position instead touches a different segment in every lane.
template <int kD, int kR>
__device__ __forceinline__ void stage_rows_in(float (*buf)[kD + 1], const float* src, int64_t stride, int64_t n0,
                                              int64_t N, int d, int tid) {
  DD_UNROLL_BY(8)  // a full unroll (kD loads in flight) spilled the backward at kD 32
  for (int it = 0; it < kD; ++it) {  // kR * kD elements, kR threads
    const int idx = tid + it * kR;
    const int j = idx / kD, c = idx % kD;
    buf[j][c] = (n0 + j < N && c < d) ? src[(n0 + j) * stride + c] : 0.0f;
  }
}

// The inverse: buf's rows (their first d columns) to dst, rows past N skipped.
template <int kD, int kR>
__device__ __forceinline__ void stage_rows_out(float* dst, int64_t stride, const float (*buf)[kD + 1], int64_t n0,
                                               int64_t N, int d, int tid) {
  DD_UNROLL_BY(8)
  for (int it = 0; it < kD; ++it) {
    const int idx = tid + it * kR;
    const int j = idx / kD, c = idx % kD;
    if (n0 + j < N && c < d) dst[(n0 + j) * stride + c] = buf[j][c];
  }
}

// One thread per position: the forward output or (kBackward) the d_qkv row. The block's rows go
// through one shared buffer, read and written a whole row segment per warp (stage_rows_*);
// each thread works on its own buffer row. The backward's matrix-vector products run with the
// output vector in registers (index unrolled) and the input vector in the thread's buffer row
// (index a runtime loop): fully unrolled kD x kD products with both in registers spilled heavily
// at kD 32 and 64. Every value comes from the same expressions in the same order as when each
// thread read and wrote its rows in global memory itself (the version the first GPU runs timed at
// 4-13% of the copy bandwidth); under the emulator the two gave the same bits on every test case.
template <int kD, bool kBackward>
__global__ void __launch_bounds__(rows_per_block(kD)) linear_attention_rows_kernel(Params p) {
  constexpr int kR = rows_per_block(kD);
  constexpr int kP = kD + 1;  // each thread walks its own row: odd stride, no bank conflicts
  // The backward's dQ' and dK' read context and dcontext by column: transposed copies make those
  // row reads too, where they fit beside the rest under 48 KB (kD <= 32).
  constexpr bool kTr = kBackward && kD <= 32;
  // Every thread reads the same context element at a time (a broadcast), so one 16-byte read
  // serves four products: the matrices' rows are 16-byte aligned (kD is a multiple of 4).
  __shared__ __align__(16) float cs[kD][kD];
  __shared__ __align__(16) float dcs[kBackward ? kD : 1][kD];
  __shared__ __align__(16) float cst[kTr ? kD : 1][kD];
  __shared__ __align__(16) float dcst[kTr ? kD : 1][kD];
  __shared__ float kmax[kD], kinv[kD], coldot[kD];
  __shared__ float buf[kR][kP];
  static_assert(kD % 4 == 0, "16-byte context rows");

  const int64_t bh = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x;
  const float* ctx = p.ctx + bh * p.d * p.d;
  for (int idx = tid; idx < kD * kD; idx += kR) {
    const int c = idx / kD, e = idx % kD;
    const bool ok = c < p.d && e < p.d;
    cs[c][e] = ok ? ctx[c * p.d + e] : 0.0f;
    if constexpr (kBackward) dcs[c][e] = ok ? p.dctx[bh * p.d * p.d + c * p.d + e] : 0.0f;
    if constexpr (kTr) {
      cst[e][c] = cs[c][e];
      dcst[e][c] = dcs[c][e];
    }
  }
  if constexpr (kBackward) {
    for (int c = tid; c < kD; c += kR) {
      kmax[c] = c < p.d ? p.kmax[bh * p.d + c] : 0.0f;
      kinv[c] = c < p.d ? p.kinv[bh * p.d + c] : 0.0f;
    }
    __syncthreads();
    for (int c = tid; c < kD; c += kR) {
      float t = 0.0f;
      for (int e = 0; e < kD; ++e) t += cs[c][e] * dcs[c][e];
      coldot[c] = t;
    }
  }

  // Rows past N (the last tile) compute on zero rows and are never stored: every thread stays
  // for the barriers.
  const int64_t n0 = tile * kR;
  const float* qrows = p.qkv + b * p.N * p.C + h * p.d;  // q of position n: qrows[n * C]
  float* mine = buf[tid];
  stage_rows_in<kD, kR>(buf, qrows, p.C, n0, p.N, p.d, tid);
  __syncthreads();

  float s[kD];
  DD_UNROLL
  for (int c = 0; c < kD; ++c) s[c] = c < p.d ? mine[c] : 0.0f;
  softmax_row(s, p.d);

  if constexpr (!kBackward) {
    // Only this thread reads and writes its row from here on. o[e] sums s[c] cs[c][e] in c order,
    // four e at a time from one row read.
    float o[kD];
    DD_UNROLL
    for (int e = 0; e < kD; ++e) o[e] = 0.0f;
    DD_UNROLL
    for (int c = 0; c < kD; ++c) add_scaled_row<kD>(o, s[c], cs[c]);
    DD_UNROLL
    for (int e = 0; e < kD; ++e) mine[e] = p.scale * o[e];
    __syncthreads();
    stage_rows_out<kD, kR>(p.out + b * p.N * p.hidden + h * p.d, p.hidden, buf, n0, p.N, p.d, tid);
  } else {
    float* drows = p.out + b * p.N * p.C + h * p.d;  // dq of position n: drows[n * C]
    float acc[kD];

    // dQ'[c] = sum_e g[e] context[c][e]; dq = scale S * (dQ' - sum_c S[c] dQ'[c]).
    __syncthreads();  // every thread holds its q: the buffer takes dy
    stage_rows_in<kD, kR>(buf, p.dy + b * p.N * p.hidden + h * p.d, p.hidden, n0, p.N, p.d, tid);
    __syncthreads();
    DD_UNROLL
    for (int c = 0; c < kD; ++c) acc[c] = 0.0f;
    for (int e = 0; e < p.d; ++e) {
      const float ge = mine[e];
      if constexpr (kTr) {
        add_scaled_row<kD>(acc, ge, cst[e]);
      } else {
        DD_UNROLL
        for (int c = 0; c < kD; ++c) acc[c] += ge * cs[c][e];
      }
    }
    float rowdot = 0.0f;
    DD_UNROLL
    for (int c = 0; c < kD; ++c) rowdot += s[c] * acc[c];
    DD_UNROLL
    for (int c = 0; c < kD; ++c) mine[c] = p.scale * (s[c] * (acc[c] - rowdot));
    __syncthreads();
    stage_rows_out<kD, kR>(drows, p.C, buf, n0, p.N, p.d, tid);
    __syncthreads();

    // s becomes this position's K'. dK'[c] = sum_e v[e] dcontext[c][e]; dk = K' * (dK' - coldot).
    stage_rows_in<kD, kR>(buf, qrows + p.hidden, p.C, n0, p.N, p.d, tid);
    __syncthreads();
    DD_UNROLL
    for (int c = 0; c < kD; ++c) s[c] = c < p.d ? expf(mine[c] - kmax[c]) * kinv[c] : 0.0f;
    __syncthreads();
    stage_rows_in<kD, kR>(buf, qrows + 2 * p.hidden, p.C, n0, p.N, p.d, tid);
    __syncthreads();
    DD_UNROLL
    for (int c = 0; c < kD; ++c) acc[c] = 0.0f;
    for (int e = 0; e < p.d; ++e) {
      const float ve = mine[e];
      if constexpr (kTr) {
        add_scaled_row<kD>(acc, ve, dcst[e]);
      } else {
        DD_UNROLL
        for (int c = 0; c < kD; ++c) acc[c] += ve * dcs[c][e];
      }
    }
    DD_UNROLL
    for (int c = 0; c < kD; ++c) mine[c] = s[c] * (acc[c] - coldot[c]);
    __syncthreads();
    stage_rows_out<kD, kR>(drows + p.hidden, p.C, buf, n0, p.N, p.d, tid);
    __syncthreads();

    // dv[e] = sum_c K'[c] dcontext[c][e].
    DD_UNROLL
    for (int c = 0; c < kD; ++c) mine[c] = s[c];
    DD_UNROLL
    for (int e = 0; e < kD; ++e) acc[e] = 0.0f;
    for (int c = 0; c < p.d; ++c) add_scaled_row<kD>(acc, mine[c], dcs[c]);
    DD_UNROLL
    for (int e = 0; e < kD; ++e) mine[e] = acc[e];
    __syncthreads();
    stage_rows_out<kD, kR>(drows + 2 * p.hidden, p.C, buf, n0, p.N, p.d, tid);
  }
}

// ---- host-side plans, shared by linear_attention.cu and the emulation test ----

template <class F>
void with_head_dim(const char* op, int64_t d, F&& f) {
  DD_CHECK(d >= 1 && d <= kMaxHeadDim, op, ": the CUDA kernel supports dim_head up to ", kMaxHeadDim, ", got ",
           d);
  if (d <= 8) return f(std::integral_constant<int, 8>{});
  if (d <= 16) return f(std::integral_constant<int, 16>{});
  if (d <= 32) return f(std::integral_constant<int, 32>{});
  return f(std::integral_constant<int, 64>{});
}

// Floats of scratch: kmax, kinv ([BH, d] each), context and dcontext ([BH, d, d] each).
inline int64_t scratch_floats(int64_t B, int64_t heads, int64_t d) { return B * heads * (2 * d + 2 * d * d); }

inline Params make_params(const char* op, const float* qkv, const float* dy, float* out, float* scratch, int64_t B,
                          int64_t N, int64_t heads, int64_t d) {
  Params p{};
  p.qkv = qkv;
  p.dy = dy;
  p.out = out;
  const int64_t bh = B * heads;
  p.kmax = scratch;
  p.kinv = scratch + bh * d;
  p.ctx = scratch + 2 * bh * d;
  p.dctx = scratch + 2 * bh * d + bh * d * d;
  p.N = N;
  p.hidden = heads * d;
  p.C = 3 * p.hidden;
  const int64_t min_rows = rows_per_block(kMaxHeadDim);
  p.tiles = (N + min_rows - 1) / min_rows;  // the most plan() can ask for
  p.heads = static_cast<int>(heads);
  p.d = static_cast<int>(d);
  p.scale = 1.0f / std::sqrt(static_cast<float>(d));
  DD_CHECK(bh * p.tiles < (int64_t(1) << 31), op, ": too many blocks (B ", B, ", heads ", heads, ", N ", N, ")");
  return p;
}

// launch(kernel, blocks, threads, name, params) runs one kernel.
template <bool kBackward, class Launch>
void plan(const Params& p, int64_t B, Launch&& launch) {
  const auto heads_total = static_cast<unsigned>(B * p.heads);
  with_head_dim(kBackward ? "linear_attention_backward" : "linear_attention_forward", p.d, [&](auto tag) {
    constexpr int kD = decltype(tag)::value;
    constexpr int kR = rows_per_block(kD);
    Params q = p;
    q.tiles = (p.N + kR - 1) / kR;
    const auto row_blocks = static_cast<unsigned>(B * p.heads * q.tiles);
    launch(linear_attention_head_kernel<kD, kBackward>, heads_total, kHeadThreads, "linear_attention_head_kernel",
           q);
    launch(linear_attention_rows_kernel<kD, kBackward>, row_blocks, kR, "linear_attention_rows_kernel", q);
  });
}

}  // namespace dd::kernels::cuda::linattn
