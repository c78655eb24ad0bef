#pragma once
// Device code of linear attention (kernels/linear_attention.h), kept free of
// CUDA runtime calls so that the CPU tests can also run it through
// tests/support/cuda_emulation.h. kernels/cuda/linear_attention.cu launches it.
//
// Two kernels per direction, with S = softmax_d(q) per position, K' =
// softmax_n(k) per feature, Q' = scale S, G = dy:
//   head kernel (one block per (batch, head)): the column max and 1/sum of k
//     over the positions, context = K'^T V and, for the backward,
//     dcontext = Q'^T G, all reduced over N inside the block in a fixed order
//     (deterministic, no atomics) and written to a small scratch;
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

namespace dd::kernels::cuda::linattn {

constexpr int kHeadThreads = 256;
// Rows kernel: threads per block, one position each; 32 at kD 64 keeps its
// shared memory (context, dcontext, a row per thread) under 48 KB.
constexpr int rows_per_block(int kD) { return kD <= 32 ? 64 : 32; }
constexpr int kMaxHeadDim = 64;

// Positions per shared tile in the head kernel: four [tile][kD + 1] tiles stay near 34 KB.
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

// One block per (batch, head): k's column statistics, context and (kBackward) dcontext.
template <int kD, bool kBackward>
__global__ void __launch_bounds__(kHeadThreads) linear_attention_head_kernel(Params p) {
  constexpr int kT = tile_rows(kD);
  constexpr int kP = kD + 1;  // row stride: the row softmax walks a row per thread
  constexpr int kGroups = kHeadThreads / kD;
  constexpr int kPer = (kD * kD + kHeadThreads - 1) / kHeadThreads;
  static_assert(kHeadThreads % kD == 0, "column groups must fill the block");
  __shared__ float red_m[kGroups][kD], red_s[kGroups][kD];
  __shared__ float kmax[kD], kinv[kD];
  __shared__ float ks[kT][kP], vs[kT][kP];
  __shared__ float qs[kBackward ? kT : 1][kP], gs[kBackward ? kT : 1][kP];

  const int64_t bh = blockIdx.x;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x;
  const float* base = p.qkv + b * p.N * p.C + h * p.d;
  const float* kbase = base + p.hidden;
  const float* vbase = base + 2 * p.hidden;
  const float* gbase = kBackward ? p.dy + b * p.N * p.hidden + h * p.d : nullptr;

  // Column max and sum of exp of k: each thread keeps an online (max, sum) over
  // a fixed stride of positions, then one thread per column folds the groups in order.
  {
    const int c = tid % kD, grp = tid / kD;
    float m = -INFINITY, s = 0.0f;
    if (c < p.d) {
      for (int64_t n = grp; n < p.N; n += kGroups) {
        const float x = kbase[n * p.C + c];
        if (x > m) {
          s = s * expf(m - x) + 1.0f;
          m = x;
        } else {
          s += expf(x - m);
        }
      }
    }
    red_m[grp][c] = m;
    red_s[grp][c] = s;
  }
  __syncthreads();
  if (tid < kD) {
    float m = -INFINITY, s = 0.0f;
    for (int grp = 0; grp < kGroups; ++grp) {
      const float gm = red_m[grp][tid], gsum = red_s[grp][tid];
      if (gsum == 0.0f) continue;  // a group with no positions (N < kGroups) or a padded column
      const float m_new = fmaxf(m, gm);
      s = s * expf(m - m_new) + gsum * expf(gm - m_new);
      m = m_new;
    }
    const bool real = tid < p.d;
    kmax[tid] = real ? m : 0.0f;
    kinv[tid] = real ? 1.0f / s : 0.0f;
    if (real) {
      p.kmax[bh * p.d + tid] = m;
      p.kinv[bh * p.d + tid] = 1.0f / s;
    }
  }

  // context[c][e] = sum_n K'[n][c] v[n][e], dcontext[c][e] = scale sum_n S[n][c] g[n][e];
  // thread tid owns entries tid, tid + 256, ... of the kD x kD matrices.
  float acc[kPer], dacc[kPer];
  DD_UNROLL
  for (int r = 0; r < kPer; ++r) acc[r] = dacc[r] = 0.0f;

  for (int64_t n0 = 0; n0 < p.N; n0 += kT) {
    const int len = static_cast<int>(min64(kT, p.N - n0));
    __syncthreads();  // kmax/kinv are written; the previous tile is consumed
    for (int idx = tid; idx < kT * kD; idx += kHeadThreads) {
      const int j = idx / kD, c = idx % kD;
      const int64_t n = n0 + j;
      const bool ok = j < len && c < p.d;
      ks[j][c] = ok ? expf(kbase[n * p.C + c] - kmax[c]) * kinv[c] : 0.0f;
      vs[j][c] = ok ? vbase[n * p.C + c] : 0.0f;
      if constexpr (kBackward) {
        qs[j][c] = ok ? base[n * p.C + c] : 0.0f;
        gs[j][c] = ok ? gbase[n * p.hidden + c] : 0.0f;
      }
    }
    if constexpr (kBackward) {
      __syncthreads();
      // q -> softmax over the features, one position per thread.
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
    DD_UNROLL
    for (int r = 0; r < kPer; ++r) {
      const int idx = tid + r * kHeadThreads;
      if (idx < kD * kD) {
        const int c = idx / kD, e = idx % kD;
        for (int j = 0; j < len; ++j) {
          acc[r] += ks[j][c] * vs[j][e];
          if constexpr (kBackward) dacc[r] += qs[j][c] * gs[j][e];
        }
      }
    }
  }

  float* ctx = p.ctx + bh * p.d * p.d;
  float* dctx = kBackward ? p.dctx + bh * p.d * p.d : nullptr;
  DD_UNROLL
  for (int r = 0; r < kPer; ++r) {
    const int idx = tid + r * kHeadThreads;
    const int c = idx / kD, e = idx % kD;
    if (idx < kD * kD && c < p.d && e < p.d) {
      ctx[c * p.d + e] = acc[r];
      if constexpr (kBackward) dctx[c * p.d + e] = p.scale * dacc[r];
    }
  }
}

// One thread per position: the forward output or (kBackward) the d_qkv row.
// The backward's matrix-vector products run with the output vector in
// registers (index unrolled) and the input vector in the thread's own row of
// shared memory (index a runtime loop): fully unrolled kD x kD products with
// both in registers spilled heavily at kD 32 and 64.
template <int kD, bool kBackward>
__global__ void __launch_bounds__(rows_per_block(kD)) linear_attention_rows_kernel(Params p) {
  constexpr int kR = rows_per_block(kD);
  constexpr int kP = kD + 1;  // each thread walks its own row: odd stride, no bank conflicts
  __shared__ float cs[kD][kD];
  __shared__ float dcs[kBackward ? kD : 1][kD];
  __shared__ float kmax[kD], kinv[kD], coldot[kD];
  __shared__ float rowbuf[kBackward ? kR : 1][kP];

  const int64_t bh = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x;
  const float* ctx = p.ctx + bh * p.d * p.d;
  for (int idx = tid; idx < kD * kD; idx += kR) {
    const int c = idx / kD, e = idx % kD;
    const bool ok = c < p.d && e < p.d;
    cs[c][e] = ok ? ctx[c * p.d + e] : 0.0f;
    if constexpr (kBackward) dcs[c][e] = ok ? p.dctx[bh * p.d * p.d + c * p.d + e] : 0.0f;
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
  __syncthreads();

  const int64_t n = tile * kR + tid;
  if (n >= p.N) return;  // no barrier below
  const float* row = p.qkv + (b * p.N + n) * p.C + h * p.d;

  float s[kD];
  load_row(s, row, true, p.d);
  softmax_row(s, p.d);

  if constexpr (!kBackward) {
    float* dst = p.out + (b * p.N + n) * p.hidden + h * p.d;
    DD_UNROLL
    for (int e = 0; e < kD; ++e) {
      float o = 0.0f;
      DD_UNROLL
      for (int c = 0; c < kD; ++c) o += s[c] * cs[c][e];
      if (e < p.d) dst[e] = p.scale * o;
    }
  } else {
    float* dst = p.out + (b * p.N + n) * p.C + h * p.d;
    float* mine = rowbuf[tid];  // only this thread touches it: no barriers needed
    float acc[kD];

    // dQ'[c] = sum_e g[e] context[c][e]; dq = scale S * (dQ' - sum_c S[c] dQ'[c]).
    const float* g = p.dy + (b * p.N + n) * p.hidden + h * p.d;
    for (int e = 0; e < p.d; ++e) mine[e] = g[e];
    DD_UNROLL
    for (int c = 0; c < kD; ++c) acc[c] = 0.0f;
    for (int e = 0; e < p.d; ++e) {
      const float ge = mine[e];
      DD_UNROLL
      for (int c = 0; c < kD; ++c) acc[c] += ge * cs[c][e];
    }
    float rowdot = 0.0f;
    DD_UNROLL
    for (int c = 0; c < kD; ++c) rowdot += s[c] * acc[c];
    DD_UNROLL
    for (int c = 0; c < kD; ++c)
      if (c < p.d) dst[c] = p.scale * (s[c] * (acc[c] - rowdot));

    // s becomes this position's K'. dK'[c] = sum_e v[e] dcontext[c][e]; dk = K' * (dK' - coldot).
    load_row(s, row + p.hidden, true, p.d);
    DD_UNROLL
    for (int c = 0; c < kD; ++c) s[c] = c < p.d ? expf(s[c] - kmax[c]) * kinv[c] : 0.0f;
    for (int e = 0; e < p.d; ++e) mine[e] = row[2 * p.hidden + e];
    DD_UNROLL
    for (int c = 0; c < kD; ++c) acc[c] = 0.0f;
    for (int e = 0; e < p.d; ++e) {
      const float ve = mine[e];
      DD_UNROLL
      for (int c = 0; c < kD; ++c) acc[c] += ve * dcs[c][e];
    }
    DD_UNROLL
    for (int c = 0; c < kD; ++c)
      if (c < p.d) dst[p.hidden + c] = s[c] * (acc[c] - coldot[c]);

    // dv[e] = sum_c K'[c] dcontext[c][e].
    DD_UNROLL
    for (int c = 0; c < kD; ++c)
      if (c < p.d) mine[c] = s[c];
    DD_UNROLL
    for (int e = 0; e < kD; ++e) acc[e] = 0.0f;
    for (int c = 0; c < p.d; ++c) {
      const float kc = mine[c];
      DD_UNROLL
      for (int e = 0; e < kD; ++e) acc[e] += kc * dcs[c][e];
    }
    DD_UNROLL
    for (int e = 0; e < kD; ++e)
      if (e < p.d) dst[2 * p.hidden + e] = acc[e];
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
