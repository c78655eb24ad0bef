#pragma once
// Device code of the flash-style softmax attention (kernels/attention.h), kept
// free of CUDA runtime calls so that the CPU tests can also run it through
// tests/support/cuda_emulation.h. kernels/cuda/attention.cu launches it.
//
// Every block owns kRows rows (one per thread: query rows, or key rows in the
// dK/dV pass) of one (batch, head) and streams the other side through shared
// memory in tiles of tile_rows(kD) positions. Per-thread rows live in
// registers (every loop over them is unrolled: a dynamic index would send
// them to local memory), zero-padded from dim_head d up to the template kD,
// so any d <= kD is exact; a warp reads shared tiles at one address at a time
// (a broadcast, no bank conflicts).
//
// Forward: online softmax (running max m, running sum l) over the key tiles.
// Backward, with nothing N x N stored:
//   stats pass:  m_i, 1/l_i and delta_i = sum_c dO_i[c] O_i[c] (O recomputed)
//   dK/dV pass:  each block owns key rows and loops over every query tile in
//                order, so dK and dV sum deterministically without atomics
//   dQ pass:     each block owns query rows and loops over every key tile.
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

namespace dd::kernels::cuda::attn {

constexpr int kRows = 64;     // threads per block, one row each
constexpr int kChunk = 8;     // keys scored together before one rescale of the accumulator
constexpr int kMaxHeadDim = 128;

// Positions per shared tile: two [tile][kD] float tiles stay at 32 KB.
constexpr int tile_rows(int kD) { return kD <= 64 ? 64 : 32; }

struct Params {
  const float* qkv;  // [B, N, 3 * hidden]
  const float* dy;   // [B, N, hidden] (backward only)
  float* out;        // forward: [B, N, hidden]; backward: d_qkv [B, N, 3 * hidden]
  float* row_max;    // [B * heads, N]: stats of the backward
  float* row_inv;    // [B * heads, N]: 1 / sum_j exp(s_ij - m_i)
  float* row_delta;  // [B * heads, N]
  int64_t N, C, hidden;  // positions, qkv channels (3 * hidden), heads * d
  int64_t tiles;         // row blocks per (batch, head): ceil(N / kRows)
  int heads, d;
  float scale;
};

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// dst[j][c] = src[(n0 + j) * stride + c] * mul for in-range j, c; zeros elsewhere.
template <int kD, int kT>
__device__ __forceinline__ void load_tile(float (*dst)[kD], const float* src, int64_t stride, int64_t n0,
                                          int64_t N, int d, float mul) {
  for (int idx = threadIdx.x; idx < kT * kD; idx += blockDim.x) {
    const int j = idx / kD, c = idx % kD;
    const int64_t n = n0 + j;
    dst[j][c] = (n < N && c < d) ? src[n * stride + c] * mul : 0.0f;
  }
}

// r[c] = src[c] * mul for c < d when valid; zeros elsewhere.
template <int kD>
__device__ __forceinline__ void load_row(float (&r)[kD], const float* src, bool valid, int d, float mul) {
  DD_UNROLL
  for (int c = 0; c < kD; ++c) r[c] = (valid && c < d) ? src[c] * mul : 0.0f;
}

template <int kD>
__device__ __forceinline__ float dot(const float (&a)[kD], const float* b) {
  float s = 0.0f;
  DD_UNROLL
  for (int c = 0; c < kD; ++c) s += a[c] * b[c];
  return s;
}

// kStats = false: the forward, writing out.
// kStats = true: the backward's first pass, writing row_max, row_inv and row_delta.
template <int kD, bool kStats>
__global__ void __launch_bounds__(kRows) attention_rows_kernel(Params p) {
  constexpr int kT = tile_rows(kD);
  static_assert(kT % kChunk == 0, "chunks must tile the key tile");
  __shared__ float ks[kT][kD];
  __shared__ float vs[kT][kD];

  const int64_t bh = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t i = tile * kRows + threadIdx.x;
  const bool valid = i < p.N;  // rows past N still load tiles and reach every barrier
  const float* base = p.qkv + b * p.N * p.C + h * p.d;

  float q[kD], o[kD];
  // The scale goes into q before the dot product, as in the CPU kernel.
  load_row(q, base + (valid ? i : 0) * p.C, valid, p.d, p.scale);
  DD_UNROLL
  for (int c = 0; c < kD; ++c) o[c] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int64_t j0 = 0; j0 < p.N; j0 += kT) {
    const int len = static_cast<int>(min64(kT, p.N - j0));
    __syncthreads();  // every thread is done with the previous tile
    load_tile<kD, kT>(ks, base + p.hidden, p.C, j0, p.N, p.d, 1.0f);
    load_tile<kD, kT>(vs, base + 2 * p.hidden, p.C, j0, p.N, p.d, 1.0f);
    __syncthreads();
    for (int c0 = 0; c0 < len; c0 += kChunk) {
      float s[kChunk];
      float cmax = -INFINITY;
      DD_UNROLL
      for (int u = 0; u < kChunk; ++u) {
        s[u] = c0 + u < len ? dot(q, ks[c0 + u]) : -INFINITY;
        cmax = fmaxf(cmax, s[u]);
      }
      // Key c0 < len is real, so m_new is finite; exp(-inf - m_new) = 0 on the first chunk.
      const float m_new = fmaxf(m, cmax);
      const float alpha = expf(m - m_new);
      l *= alpha;
      DD_UNROLL
      for (int c = 0; c < kD; ++c) o[c] *= alpha;
      DD_UNROLL
      for (int u = 0; u < kChunk; ++u) {
        const float pj = c0 + u < len ? expf(s[u] - m_new) : 0.0f;
        l += pj;
        DD_UNROLL
        for (int c = 0; c < kD; ++c) o[c] += pj * vs[c0 + u][c];
      }
      m = m_new;
    }
  }
  if (!valid) return;  // after the last barrier

  const float inv = 1.0f / l;
  if constexpr (!kStats) {
    float* dst = p.out + (b * p.N + i) * p.hidden + h * p.d;
    DD_UNROLL
    for (int c = 0; c < kD; ++c)
      if (c < p.d) dst[c] = o[c] * inv;
  } else {
    const float* g = p.dy + (b * p.N + i) * p.hidden + h * p.d;
    float delta = 0.0f;
    DD_UNROLL
    for (int c = 0; c < kD; ++c)
      if (c < p.d) delta += g[c] * (o[c] * inv);
    const int64_t r = bh * p.N + i;
    p.row_max[r] = m;
    p.row_inv[r] = inv;
    p.row_delta[r] = delta;
  }
}

// dV_j = sum_i P_ij dO_i,  dK_j = scale sum_i dS_ij q_i,  dS_ij = P_ij (dO_i . v_j - delta_i).
// The block owns key rows j and visits every query tile in order.
template <int kD>
__global__ void __launch_bounds__(kRows) attention_dkdv_kernel(Params p) {
  constexpr int kT = tile_rows(kD);
  __shared__ float qs[kT][kD];  // q * scale
  __shared__ float gs[kT][kD];  // dO
  __shared__ float ms[kT], ls[kT], ds[kT];

  const int64_t bh = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t j = tile * kRows + threadIdx.x;
  const bool valid = j < p.N;
  const float* base = p.qkv + b * p.N * p.C + h * p.d;
  const float* gbase = p.dy + b * p.N * p.hidden + h * p.d;
  const float* stat_max = p.row_max + bh * p.N;
  const float* stat_inv = p.row_inv + bh * p.N;
  const float* stat_delta = p.row_delta + bh * p.N;

  float k[kD], v[kD], dk[kD], dv[kD];
  load_row(k, base + p.hidden + (valid ? j : 0) * p.C, valid, p.d, 1.0f);
  load_row(v, base + 2 * p.hidden + (valid ? j : 0) * p.C, valid, p.d, 1.0f);
  DD_UNROLL
  for (int c = 0; c < kD; ++c) dk[c] = dv[c] = 0.0f;

  for (int64_t i0 = 0; i0 < p.N; i0 += kT) {
    const int len = static_cast<int>(min64(kT, p.N - i0));
    __syncthreads();
    load_tile<kD, kT>(qs, base, p.C, i0, p.N, p.d, p.scale);
    load_tile<kD, kT>(gs, gbase, p.hidden, i0, p.N, p.d, 1.0f);
    for (int t = threadIdx.x; t < kT; t += blockDim.x) {
      const bool in = t < len;
      ms[t] = in ? stat_max[i0 + t] : 0.0f;
      ls[t] = in ? stat_inv[i0 + t] : 0.0f;
      ds[t] = in ? stat_delta[i0 + t] : 0.0f;
    }
    __syncthreads();
    for (int t = 0; t < len; ++t) {
      const float pij = expf(dot(k, qs[t]) - ms[t]) * ls[t];
      const float dsij = pij * (dot(v, gs[t]) - ds[t]);
      DD_UNROLL
      for (int c = 0; c < kD; ++c) {
        dv[c] += pij * gs[t][c];
        dk[c] += dsij * qs[t][c];  // qs carries the scale
      }
    }
  }
  if (!valid) return;
  float* dst = p.out + (b * p.N + j) * p.C + h * p.d;
  DD_UNROLL
  for (int c = 0; c < kD; ++c) {
    if (c < p.d) {
      dst[p.hidden + c] = dk[c];
      dst[2 * p.hidden + c] = dv[c];
    }
  }
}

// dQ_i = scale sum_j dS_ij k_j; the block owns query rows and visits every key tile.
template <int kD>
__global__ void __launch_bounds__(kRows) attention_dq_kernel(Params p) {
  constexpr int kT = tile_rows(kD);
  __shared__ float ks[kT][kD];
  __shared__ float vs[kT][kD];

  const int64_t bh = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t i = tile * kRows + threadIdx.x;
  const bool valid = i < p.N;
  const float* base = p.qkv + b * p.N * p.C + h * p.d;
  const int64_t r = bh * p.N + (valid ? i : 0);

  float q[kD], g[kD], dq[kD];
  load_row(q, base + (valid ? i : 0) * p.C, valid, p.d, p.scale);
  load_row(g, p.dy + (b * p.N + (valid ? i : 0)) * p.hidden + h * p.d, valid, p.d, 1.0f);
  DD_UNROLL
  for (int c = 0; c < kD; ++c) dq[c] = 0.0f;
  const float m = valid ? p.row_max[r] : 0.0f;
  const float inv = valid ? p.row_inv[r] : 0.0f;
  const float delta = valid ? p.row_delta[r] : 0.0f;

  for (int64_t j0 = 0; j0 < p.N; j0 += kT) {
    const int len = static_cast<int>(min64(kT, p.N - j0));
    __syncthreads();
    load_tile<kD, kT>(ks, base + p.hidden, p.C, j0, p.N, p.d, 1.0f);
    load_tile<kD, kT>(vs, base + 2 * p.hidden, p.C, j0, p.N, p.d, 1.0f);
    __syncthreads();
    for (int t = 0; t < len; ++t) {
      const float pij = expf(dot(q, ks[t]) - m) * inv;
      const float dsij = pij * (dot(g, vs[t]) - delta);
      DD_UNROLL
      for (int c = 0; c < kD; ++c) dq[c] += dsij * ks[t][c];
    }
  }
  if (!valid) return;
  float* dst = p.out + (b * p.N + i) * p.C + h * p.d;
  DD_UNROLL
  for (int c = 0; c < kD; ++c)
    if (c < p.d) dst[c] = p.scale * dq[c];
}

// ---- host-side plans, shared by attention.cu and the emulation test ----

// Calls f(std::integral_constant<int, kD>) for the smallest instantiated kD >= d.
template <class F>
void with_head_dim(const char* op, int64_t d, F&& f) {
  DD_CHECK(d >= 1 && d <= kMaxHeadDim, op, ": the CUDA kernel supports dim_head up to ", kMaxHeadDim, ", got ",
           d);
  if (d <= 8) return f(std::integral_constant<int, 8>{});
  if (d <= 16) return f(std::integral_constant<int, 16>{});
  if (d <= 32) return f(std::integral_constant<int, 32>{});
  if (d <= 64) return f(std::integral_constant<int, 64>{});
  return f(std::integral_constant<int, 128>{});
}

inline Params make_params(const char* op, const float* qkv, const float* dy, float* out, float* stats, int64_t B,
                          int64_t N, int64_t heads, int64_t d) {
  Params p{};
  p.qkv = qkv;
  p.dy = dy;
  p.out = out;
  const int64_t rows = B * heads * N;
  p.row_max = stats;
  p.row_inv = stats ? stats + rows : nullptr;
  p.row_delta = stats ? stats + 2 * rows : nullptr;
  p.N = N;
  p.hidden = heads * d;
  p.C = 3 * p.hidden;
  p.tiles = (N + kRows - 1) / kRows;
  p.heads = static_cast<int>(heads);
  p.d = static_cast<int>(d);
  p.scale = 1.0f / std::sqrt(static_cast<float>(d));
  DD_CHECK(B * heads * p.tiles < (int64_t(1) << 31), op, ": too many blocks (B ", B, ", heads ", heads, ", N ",
           N, ")");
  return p;
}

// Floats of scratch the backward needs (row max, 1/sum, delta per row).
inline int64_t backward_scratch_floats(int64_t B, int64_t N, int64_t heads) { return 3 * B * heads * N; }

// launch(kernel, blocks, threads, name, params) runs one kernel.
template <class Launch>
void forward_plan(const Params& p, int64_t B, Launch&& launch) {
  const auto blocks = static_cast<unsigned>(B * p.heads * p.tiles);
  with_head_dim("attention_forward", p.d, [&](auto tag) {
    constexpr int kD = decltype(tag)::value;
    launch(attention_rows_kernel<kD, false>, blocks, kRows, "attention_forward_kernel", p);
  });
}

template <class Launch>
void backward_plan(const Params& p, int64_t B, Launch&& launch) {
  const auto blocks = static_cast<unsigned>(B * p.heads * p.tiles);
  with_head_dim("attention_backward", p.d, [&](auto tag) {
    constexpr int kD = decltype(tag)::value;
    launch(attention_rows_kernel<kD, true>, blocks, kRows, "attention_stats_kernel", p);
    launch(attention_dkdv_kernel<kD>, blocks, kRows, "attention_dkdv_kernel", p);
    launch(attention_dq_kernel<kD>, blocks, kRows, "attention_dq_kernel", p);
  });
}

}  // namespace dd::kernels::cuda::attn
