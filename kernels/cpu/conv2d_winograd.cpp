#include "kernels/cpu/conv2d_winograd.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/chunk_stats.h"
#include "kernels/cpu/conv2d_winograd_f4.h"
#include "kernels/cpu/sgemm_small.h"

// F(2x2, 3x3) below, F(4x4, 3x3) in conv2d_winograd_f4.h; one driver runs either. F(2x2) with
// Lavin & Gray's matrices (interpolation points 0, 1, -1, infinity):
//   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1 1  1  0]
//         [0  1  1  0]        [1/2  1/2  1/2]          [0 1 -1 -1]
//         [0 -1  1  0]        [1/2 -1/2  1/2]
//         [0  1  0 -1]        [ 0    0    1 ]
// Output tile (th, tw) covers y rows 2th..2th+1, columns 2tw..2tw+1, and reads the 4x4 input tile
// at rows 2th-1..2th+2, columns 2tw-1..2tw+2 (padding 1: outside x reads zeros). Odd H or W end
// in a half tile whose extra row/column is computed and dropped.
//
// Layout, all row-major, channels innermost (NHWC gives contiguous channel vectors, so every
// transform is a loop over channels that the compiler vectorises):
//   U [P][cin][cout]  transformed weights, built once per call (xi = 4 * row + column for F(2x2),
//                     P = 16 points; 6 * row + column for F(4x4), P = 36)
//   V [P][n][cin]     transformed input tiles of a chunk of n tiles
//   M [P][n][cout]    M[xi] = V[xi] U[xi]: P independent single-threaded GEMMs (sgemm_small.h,
//                     U[xi] packed once per call for them)
// The tiles are cut into fixed chunks (their size depends only on the shapes); the chunks run in
// parallel, each on its own thread's V and M buffers: input transform, P single-threaded GEMMs
// (sgemm_small.h, which never threads), output transform. One barrier per call: a
// first version that shared one chunk's buffers among the threads (three omp-for barriers per
// chunk) timed 336 ms against im2col's 44 ms on one shape (32x32 128->64, batch 8) while a build
// ran beside it; that version also had scalar transforms, so the barriers' share is not known,
// but every barrier waits for a descheduled thread on a shared machine.
// Each output element is computed by exactly one sequence of operations
// whatever thread runs it, so results are bitwise the same run to run and for any thread count.
namespace dd::kernels::cpu {

namespace {
// V and M of one chunk together: about 1 MB, half the L2 of one core here (lscpu: 2 MiB per
// core), the rest for the GEMM's packed panels of U.
constexpr int64_t kChunkBytes = int64_t{1} << 20;
constexpr int64_t kMinTiles = 16;   // below this Eigen's per-GEMM fixed costs dominate
constexpr int64_t kMinChunks = 8;   // enough work items for load balance (as im2col's chunks)

// dst[xi * plane + j] = (G g_j G^T)[xi] for n kernels g_j, g_j[tap] = src[tap * tap_stride + j]
// (taps in reversed order when flip: the 180-degree rotation), in double, rounded once. The loop
// runs along j, contiguous in src and dst, so it vectorises.
void transform_weights(const float* src, int64_t tap_stride, int64_t n, bool flip, float* __restrict dst,
                       int64_t plane) {
  const float* tap_src[9];
  for (int tap = 0; tap < 9; ++tap) tap_src[tap] = src + (flip ? 8 - tap : tap) * tap_stride;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    double g[3][3];
#pragma GCC unroll 9
    for (int tap = 0; tap < 9; ++tap) g[tap / 3][tap % 3] = tap_src[tap][j];
    double t[4][3];  // G g
    for (int c = 0; c < 3; ++c) {
      t[0][c] = g[0][c];
      t[1][c] = 0.5 * (g[0][c] + g[1][c] + g[2][c]);
      t[2][c] = 0.5 * (g[0][c] - g[1][c] + g[2][c]);
      t[3][c] = g[2][c];
    }
    for (int r = 0; r < 4; ++r) {  // (G g) G^T
      dst[(r * 4 + 0) * plane + j] = static_cast<float>(t[r][0]);
      dst[(r * 4 + 1) * plane + j] = static_cast<float>(0.5 * (t[r][0] + t[r][1] + t[r][2]));
      dst[(r * 4 + 2) * plane + j] = static_cast<float>(0.5 * (t[r][0] - t[r][1] + t[r][2]));
      dst[(r * 4 + 3) * plane + j] = static_cast<float>(t[r][2]);
    }
  }
}

// v[xi * stride + c] = (B^T d B)[xi] for the channel-c 4x4 tile d whose element (r, s) is
// d[(4r + s) * n + c] (a contiguous copy of the tile, zero halo included): affine indexing, so
// the loop over c vectorises (a version reading through 16 row pointers did not).
void input_tile(const float* __restrict d, int64_t n, int64_t stride, float* __restrict v) {
  // GCC 12 left this loop scalar ("no vectype" for the loads), with local arrays and written out
  // as below alike; omp simd gets the vector loop.
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    const float* e = d + c;
    float* o = v + c;
    // t = B^T d: row r of t from rows of d (d row k at e[(4k + s) n]).
    const float t00 = e[0] - e[8 * n], t01 = e[n] - e[9 * n], t02 = e[2 * n] - e[10 * n], t03 = e[3 * n] - e[11 * n];
    const float t10 = e[4 * n] + e[8 * n], t11 = e[5 * n] + e[9 * n], t12 = e[6 * n] + e[10 * n],
                t13 = e[7 * n] + e[11 * n];
    const float t20 = e[8 * n] - e[4 * n], t21 = e[9 * n] - e[5 * n], t22 = e[10 * n] - e[6 * n],
                t23 = e[11 * n] - e[7 * n];
    const float t30 = e[4 * n] - e[12 * n], t31 = e[5 * n] - e[13 * n], t32 = e[6 * n] - e[14 * n],
                t33 = e[7 * n] - e[15 * n];
    // v = t B: the same combination along each row of t.
    o[0 * stride] = t00 - t02, o[1 * stride] = t01 + t02, o[2 * stride] = t02 - t01, o[3 * stride] = t01 - t03;
    o[4 * stride] = t10 - t12, o[5 * stride] = t11 + t12, o[6 * stride] = t12 - t11, o[7 * stride] = t11 - t13;
    o[8 * stride] = t20 - t22, o[9 * stride] = t21 + t22, o[10 * stride] = t22 - t21, o[11 * stride] = t21 - t23;
    o[12 * stride] = t30 - t32, o[13 * stride] = t31 + t32, o[14 * stride] = t32 - t31, o[15 * stride] = t31 - t33;
  }
}

// q[(2i + j) * n + c] = bias[c] + (A^T m A)[i][j] for m[xi] = mm[xi * stride + c].
void output_tile(const float* __restrict mm, int64_t n, int64_t stride, const float* __restrict bias,
                 float* __restrict q) {
  for (int64_t c = 0; c < n; ++c) {
    float t[2][4];
    for (int s = 0; s < 4; ++s) {  // A^T m
      const float m0 = mm[s * stride + c], m1 = mm[(4 + s) * stride + c], m2 = mm[(8 + s) * stride + c],
                  m3 = mm[(12 + s) * stride + c];
      t[0][s] = m0 + m1 + m2;
      t[1][s] = m1 - m2 - m3;
    }
    for (int r = 0; r < 2; ++r) {  // (A^T m) A
      q[(r * 2 + 0) * n + c] = bias[c] + (t[r][0] + t[r][1] + t[r][2]);
      q[(r * 2 + 1) * n + c] = bias[c] + (t[r][1] - t[r][2] - t[r][3]);
    }
  }
}

// d[(A r + s) * cin + c] = x[bi, M th - 1 + r, M tw - 1 + s, c] for the A x A input tile of the
// M x M output tile (th, tw) (A = M + 2), zero outside the map: per row, the in-bounds pixels are
// one contiguous run of x (gathered from its parts).
template <int M>
void copy_input_tile(const ChannelParts& x, int64_t bi, int64_t th, int64_t tw, int64_t h, int64_t w, int64_t cin,
                     float* d) {
  constexpr int A = M + 2;
  const int64_t iw0 = M * tw - 1, s_lo = std::max<int64_t>(0, -iw0), s_hi = std::min<int64_t>(A, w - iw0);
  for (int r = 0; r < A; ++r) {
    float* row = d + r * A * cin;
    const int64_t ih = M * th - 1 + r;
    if (ih < 0 || ih >= h) {
      std::fill(row, row + A * cin, 0.0f);
      continue;
    }
    std::fill(row, row + s_lo * cin, 0.0f);
    x.gather((bi * h + ih) * w + iw0 + s_lo, s_hi - s_lo, row + s_lo * cin);
    std::fill(row + s_hi * cin, row + A * cin, 0.0f);
  }
}

// yh[xi * stride + c] = (A e A^T)[xi] for the channel-c 2x2 tile e of dy, e[i][j] = g[2i + j][c]
// (g[k] null: a position past the map's odd edge, zero). dL/dM of the forward's
// y = A^T M A, with A = (A^T)^T = [1 0; 1 1; 1 -1; 0 -1].
void grad_tile(const float* const* g, const float* zero, int64_t n, int64_t stride, float* __restrict yh) {
  const float* e00 = g[0] ? g[0] : zero;
  const float* e01 = g[1] ? g[1] : zero;
  const float* e10 = g[2] ? g[2] : zero;
  const float* e11 = g[3] ? g[3] : zero;
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    // t = A e: 4x2.
    const float t00 = e00[c], t01 = e01[c];
    const float t10 = e00[c] + e10[c], t11 = e01[c] + e11[c];
    const float t20 = e00[c] - e10[c], t21 = e01[c] - e11[c];
    const float t30 = -e10[c], t31 = -e11[c];
    // yh = t A^T: row r of t becomes (t0, t0 + t1, t0 - t1, -t1).
    float* o = yh + c;
    o[0 * stride] = t00, o[1 * stride] = t00 + t01, o[2 * stride] = t00 - t01, o[3 * stride] = -t01;
    o[4 * stride] = t10, o[5 * stride] = t10 + t11, o[6 * stride] = t10 - t11, o[7 * stride] = -t11;
    o[8 * stride] = t20, o[9 * stride] = t20 + t21, o[10 * stride] = t20 - t21, o[11 * stride] = -t21;
    o[12 * stride] = t30, o[13 * stride] = t30 + t31, o[14 * stride] = t30 - t31, o[15 * stride] = -t31;
  }
}

// dst[tap * tap_stride + j] = (G^T m_j G)[tap] for n 4x4 matrices m_j[xi] = src[xi * plane + j]:
// dL/dg of the forward's U = G g G^T, in double, rounded once.
void transform_weight_grads(const float* src, int64_t plane, int64_t n, float* __restrict dst, int64_t tap_stride) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    double m[4][4];
    for (int xi = 0; xi < 16; ++xi) m[xi / 4][xi % 4] = src[xi * plane + j];
    double t[3][4];  // G^T m; G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]
    for (int c = 0; c < 4; ++c) {
      t[0][c] = m[0][c] + 0.5 * (m[1][c] + m[2][c]);
      t[1][c] = 0.5 * (m[1][c] - m[2][c]);
      t[2][c] = 0.5 * (m[1][c] + m[2][c]) + m[3][c];
    }
    for (int r = 0; r < 3; ++r) {  // (G^T m) G
      dst[(r * 3 + 0) * tap_stride + j] = static_cast<float>(t[r][0] + 0.5 * (t[r][1] + t[r][2]));
      dst[(r * 3 + 1) * tap_stride + j] = static_cast<float>(0.5 * (t[r][1] - t[r][2]));
      dst[(r * 3 + 2) * tap_stride + j] = static_cast<float>(0.5 * (t[r][1] + t[r][2]) + t[r][3]);
    }
  }
}

int64_t tiles_per_chunk_for(int64_t tiles, int64_t points, int64_t cin, int64_t cout, int64_t requested) {
  int64_t n = requested;
  if (n <= 0) {
    const int64_t fit = kChunkBytes / (points * (cin + cout) * int64_t{sizeof(float)});
    n = std::max(kMinTiles, std::min(fit, (tiles + kMinChunks - 1) / kMinChunks));
  }
  return std::max<int64_t>(1, std::min(n, tiles));
}

// The two tile sizes' transforms, for the driver below.
struct F2 {
  static constexpr int kM = 2, kA = 4;
  static void weights(const float* src, int64_t tap_stride, int64_t n, bool flip, float* dst, int64_t plane) {
    transform_weights(src, tap_stride, n, flip, dst, plane);
  }
  static void input(const float* d, int64_t n, int64_t stride, float* v) { input_tile(d, n, stride, v); }
  static void output(const float* mm, int64_t n, int64_t stride, const float* bias, float* q) {
    output_tile(mm, n, stride, bias, q);
  }
  static void grad(const float* const* g, const float* zero, int64_t n, int64_t stride, float* yh) {
    grad_tile(g, zero, n, stride, yh);
  }
  static void weight_grads(const float* src, int64_t plane, int64_t n, float* dst, int64_t tap_stride) {
    transform_weight_grads(src, plane, n, dst, tap_stride);
  }
};
struct F4 {
  static constexpr int kM = 4, kA = 6;
  static void weights(const float* src, int64_t tap_stride, int64_t n, bool flip, float* dst, int64_t plane) {
    winograd_f4::transform_weights(src, tap_stride, n, flip, dst, plane);
  }
  static void input(const float* d, int64_t n, int64_t stride, float* v) { winograd_f4::input_tile(d, n, stride, v); }
  static void output(const float* mm, int64_t n, int64_t stride, const float* bias, float* q) {
    winograd_f4::output_tile(mm, n, stride, bias, q);
  }
  static void grad(const float* const* g, const float* zero, int64_t n, int64_t stride, float* yh) {
    winograd_f4::grad_tile(g, zero, n, stride, yh);
  }
  static void weight_grads(const float* src, int64_t plane, int64_t n, float* dst, int64_t tap_stride) {
    winograd_f4::transform_weight_grads(src, plane, n, dst, tap_stride);
  }
};

// up[xi * sgemm::packed_b_size(cin, cout)] = U[xi] as the GEMMs' B ([cin x cout]) in sgemm's
// panels (pack_b's layout), once per call: Eigen re-packed U for every chunk's products (11% of
// F(4x4)'s time on 4x4 maps 512->512). Transformed a block at a time straight into the panels, so
// U goes to memory once, already packed: a packing pass after a whole-U transform made F(4x4)
// slower than Eigen on 4x4 maps 256->512 (one chunk there reads U only once), and so did
// transposing the forward's transformed blocks (36 values per kernel); its 9 taps are transposed
// instead, before the transform.
template <class F>
void packed_weights(const float* wt, int64_t cin, int64_t cout, bool flip, float* up) {
  constexpr int P = F::kA * F::kA;
  constexpr int64_t NR = sgemm::kNR, KB = 32;  // a work item: one panel's columns by KB rows of B
  const int64_t packed = sgemm::packed_b_size(cin, cout), panels = (cout + NR - 1) / NR, blocks = (cin + KB - 1) / KB;
#pragma omp parallel if (cin * cout > 4096)
  {
    std::unique_ptr<float[]> t(new float[static_cast<std::size_t>(KB * 9 * NR)]);
#pragma omp for schedule(static) collapse(2)
    for (int64_t q = 0; q < panels; ++q)
      for (int64_t kb = 0; kb < blocks; ++kb) {
        const int64_t j0 = q * NR, nj = std::min(NR, cout - j0), k0 = kb * KB, nk = std::min(KB, cin - k0);
        // Row k of B (input channel k0 + k): its nj kernels' taps at src[k * row + tap * stride + j].
        const float* src = wt + k0 * 9 * cout + j0;
        int64_t row = 9 * cout, stride = cout;
        if (!flip) {
          // w [cout][3][3][cin] runs along ci: gather the block as t[k][tap][j] (w [cin][3][3][cout]'s
          // order, which flip reads as it is), written in order (reading in order instead took
          // 1.6x the time in perf).
          for (int64_t k = 0; k < nk; ++k)
            for (int tap = 0; tap < 9; ++tap)
              for (int64_t j = 0; j < nj; ++j) t[(k * 9 + tap) * NR + j] = wt[((j0 + j) * 9 + tap) * cin + k0 + k];
          src = t.get(), row = 9 * NR, stride = NR;
        }
        float* dst = up + q * NR * cin + k0 * NR;  // row k0 of panel q (of point 0)
        for (int64_t k = 0; k < nk; ++k) {
          F::weights(src + k * row, stride, nj, flip, dst + k * NR, packed);
          for (int xi = 0; xi < P; ++xi) {
            float* r = dst + xi * packed + k * NR;
            std::fill(r + nj, r + NR, 0.0f);
          }
        }
      }
  }
}

// y = conv3x3(x) by F(M x M, 3x3), F = F2 or F4 (see winograd_conv3x3).
template <class F>
void conv3x3_tiles(const ChannelParts& x, int64_t b, int64_t h, int64_t w, const float* wt, int64_t cout, bool flip,
                   const float* bias, const ChannelPartsOut& y, int64_t tiles_per_chunk, std::vector<double>* sums) {
  constexpr int M = F::kM, P = F::kA * F::kA;  // P transformed points per tile
  const int64_t cin = x.total;
  const int64_t th_n = (h + M - 1) / M, tw_n = (w + M - 1) / M, tiles = b * th_n * tw_n;
  const int64_t per = tiles_per_chunk_for(tiles, P, cin, cout, tiles_per_chunk);
  const int64_t chunks = (tiles + per - 1) / per;
  std::unique_ptr<ChunkStats> stats(sums ? new ChunkStats(b, th_n * tw_n, per, cout) : nullptr);
  const int64_t packed = sgemm::packed_b_size(cin, cout);
  std::unique_ptr<float[]> up(new float[static_cast<std::size_t>(P * packed)]);
  packed_weights<F>(wt, cin, cout, flip, up.get());
  const float* bias_row = bias;
  std::vector<float> zero_bias;
  if (!bias) {
    zero_bias.assign(static_cast<std::size_t>(cout), 0.0f);
    bias_row = zero_bias.data();
  }

  // Each chunk's GEMMs run whole on the thread that owns the chunk (sgemm_small.h never threads).
#pragma omp parallel
  {
    std::unique_ptr<float[]> v(new float[static_cast<std::size_t>(P * per * cin)]);
    std::unique_ptr<float[]> m(new float[static_cast<std::size_t>(P * per * cout)]);
    std::unique_ptr<float[]> d(new float[static_cast<std::size_t>(P * cin)]);        // one input tile
    std::unique_ptr<float[]> q(new float[static_cast<std::size_t>(M * M * cout)]);  // one output tile
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t t0 = c * per, n = std::min(per, tiles - t0);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
        copy_input_tile<M>(x, bi, th, tw, h, w, cin, d.get());
        F::input(d.get(), cin, n * cin, v.get() + t * cin);
      }
      for (int xi = 0; xi < P; ++xi)
        sgemm::gemm_packed(n, cout, cin, v.get() + xi * n * cin, cin, 1, up.get() + xi * packed,
                           m.get() + xi * n * cout, cout, false);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
        F::output(m.get() + t * cout, cout, n * cout, bias_row, q.get());
        // A map not a multiple of M: the last tile's extra rows and columns are dropped here.
        const int64_t ncol = std::min<int64_t>(M, w - M * tw);
        double* slot = stats ? stats->slot(c, bi) : nullptr;
        for (int r = 0; r < M && M * th + r < h; ++r) {
          y.scatter(q.get() + r * M * cout, (bi * h + M * th + r) * w + M * tw, ncol);
          if (slot) ChunkStats::add_rows(slot, q.get() + r * M * cout, ncol, cout);
        }
      }
    }
  }
  if (stats) *sums = stats->fold();
}
}  // namespace

void winograd_conv3x3(const ChannelParts& x, int64_t b, int64_t h, int64_t w, const float* wt, int64_t cout,
                      bool flip, const float* bias, const ChannelPartsOut& y, int tile, int64_t tiles_per_chunk,
                      std::vector<double>* sums) {
  DD_CHECK(tile == 2 || tile == 4, "winograd_conv3x3: tile ", tile, " must be 2 or 4");
  DD_CHECK(y.total == cout, "winograd_conv3x3: y has ", y.total, " channels for cout ", cout);
  if (tile == 4)
    conv3x3_tiles<F4>(x, b, h, w, wt, cout, flip, bias, y, tiles_per_chunk, sums);
  else
    conv3x3_tiles<F2>(x, b, h, w, wt, cout, flip, bias, y, tiles_per_chunk, sums);
}

// dw [cout, 3, 3, cin] of the 3x3/p1 conv y = conv(x, w): for each of the P Winograd points,
// dU[xi] = sum over tiles of Yh[xi]^T V[xi] ([cout x n] x [n x cin] GEMMs), then dw = G^T dU G.
// Part p (a fixed range of tiles; as many parts as there are 64-tile runs, kWeightParts at most)
// sums its tiles chunk by chunk, in order, into its own dU, and the parts are added in part
// order: the result depends only on the shapes and tiles_per_chunk, not on the threads.
// The tiles are this GEMM's reduction: chunks as large as a 4 MB budget allows (short ones, 16
// tiles at 8x8 and batch 8, ran it slower than im2col), and few parts (each costs a P x cin x
// cout accumulator and its addition: with 8 parts, 8x8 512->256 at batch 8 took 2x im2col's time).
namespace {
template <class F>
void weight_grad_tiles(const ChannelParts& x, int64_t b, int64_t h, int64_t w, const float* dy, int64_t cout,
                       float* dw, int64_t tiles_per_chunk) {
  constexpr int M = F::kM, P = F::kA * F::kA;
  const int64_t cin = x.total;
  constexpr int64_t kWeightParts = 8, kTilesPerPart = 64, kDwChunkBytes = int64_t{4} << 20;
  const int64_t th_n = (h + M - 1) / M, tw_n = (w + M - 1) / M, tiles = b * th_n * tw_n;
  int64_t per = tiles_per_chunk;
  if (per <= 0) per = std::max(kMinTiles, kDwChunkBytes / (P * (cin + cout) * int64_t{sizeof(float)}));
  per = std::clamp<int64_t>(per, 1, tiles);
  const int64_t parts = std::clamp<int64_t>(tiles / kTilesPerPart, 1, kWeightParts), plane = cin * cout;
  std::unique_ptr<float[]> du(new float[static_cast<std::size_t>(parts * P * plane)]);
  const std::vector<float> zero(static_cast<std::size_t>(cout), 0.0f);

  // A chunk's transforms: tile t0 + t of the chunk into v[xi][t] and yh[xi][t] (n tiles).
  auto transform = [&](int64_t t0, int64_t t, int64_t n, float* v, float* yh, float* d) {
    const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
    copy_input_tile<M>(x, bi, th, tw, h, w, cin, d);
    F::input(d, cin, n * cin, v + t * cin);
    const float* g[M * M];
    for (int k = 0; k < M * M; ++k) {
      const int64_t oh = M * th + k / M, ow = M * tw + k % M;
      g[k] = oh < h && ow < w ? dy + ((bi * h + oh) * w + ow) * cout : nullptr;
    }
    F::grad(g, zero.data(), cout, n * cout, yh + t * cout);
  };
  // dU[xi] (cout x cin) += Yh[xi]^T V[xi] (A = Yh^T read along Yh's rows); a part's first chunk
  // writes dU instead of adding to zeros: the same bits (its sums start from 0 either way) without
  // a pass over dU (P x cin x cout floats, 19 MB at 256 -> 512, often one chunk's whole work).
  auto accumulate = [&](float* acc, int xi, int64_t n, const float* v, const float* yh, bool first) {
    sgemm::gemm(cout, cin, n, yh + xi * n * cout, 1, cout, v + xi * n * cin, cin, acc + xi * plane, cin, !first);
  };
  // Each GEMM runs whole on one thread (sgemm_small.h never threads).
  if (parts >= omp_get_max_threads()) {
#pragma omp parallel
    {
      std::unique_ptr<float[]> v(new float[static_cast<std::size_t>(P * per * cin)]);
      std::unique_ptr<float[]> yh(new float[static_cast<std::size_t>(P * per * cout)]);
      std::unique_ptr<float[]> d(new float[static_cast<std::size_t>(P * cin)]);
#pragma omp for schedule(static)
      for (int64_t p = 0; p < parts; ++p) {
        float* acc = du.get() + p * P * plane;
        const int64_t part_begin = p * tiles / parts, part_end = (p + 1) * tiles / parts;
        if (part_begin == part_end) std::fill(acc, acc + P * plane, 0.0f);
        for (int64_t t0 = part_begin; t0 < part_end; t0 += per) {
          const int64_t n = std::min(per, part_end - t0);
          for (int64_t t = 0; t < n; ++t) transform(t0, t, n, v.get(), yh.get(), d.get());
          for (int xi = 0; xi < P; ++xi) accumulate(acc, xi, n, v.get(), yh.get(), t0 == part_begin);
        }
      }
    }
  } else {
    // Fewer parts than threads (the deep levels' few tiles: one part below 128 tiles left a core
    // idle, bench/RESULTS.md's 1- and 2-thread tables): the threads share each chunk, the tiles'
    // transforms split over them, then the P GEMMs. Every GEMM is the one the branch above runs,
    // in the same order per dU[xi]: the same bits.
    std::unique_ptr<float[]> v(new float[static_cast<std::size_t>(P * per * cin)]);
    std::unique_ptr<float[]> yh(new float[static_cast<std::size_t>(P * per * cout)]);
    if (tiles < parts) std::fill(du.get(), du.get() + parts * P * plane, 0.0f);  // an empty part
#pragma omp parallel
    {
      std::unique_ptr<float[]> d(new float[static_cast<std::size_t>(P * cin)]);
      for (int64_t p = 0; p < parts; ++p) {
        float* acc = du.get() + p * P * plane;
        const int64_t part_begin = p * tiles / parts, part_end = (p + 1) * tiles / parts;
        for (int64_t t0 = part_begin; t0 < part_end; t0 += per) {
          const int64_t n = std::min(per, part_end - t0);
#pragma omp for schedule(static)
          for (int64_t t = 0; t < n; ++t) transform(t0, t, n, v.get(), yh.get(), d.get());
#pragma omp for schedule(static)
          for (int xi = 0; xi < P; ++xi) accumulate(acc, xi, n, v.get(), yh.get(), t0 == part_begin);
        }
      }
    }
  }
  float* sum = du.get();
  for (int64_t p = 1; p < parts; ++p) {
    const float* src = du.get() + p * P * plane;
#pragma omp parallel for simd schedule(static) if (P * plane > (1 << 16))
    for (int64_t i = 0; i < P * plane; ++i) sum[i] += src[i];
  }
  // dU[xi] is [cout][cin]; dw row co holds the taps of every ci: dw[co * 9 * cin + tap * cin + ci].
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t co = 0; co < cout; ++co) F::weight_grads(sum + co * cin, plane, cin, dw + co * 9 * cin, cin);
}
}  // namespace

void winograd_weight_grad3x3(const ChannelParts& x, int64_t b, int64_t h, int64_t w, const float* dy, int64_t cout,
                             float* dw, int tile, int64_t tiles_per_chunk) {
  DD_CHECK(tile == 2 || tile == 4, "winograd_weight_grad3x3: tile ", tile, " must be 2 or 4");
  if (tile == 4)
    weight_grad_tiles<F4>(x, b, h, w, dy, cout, dw, tiles_per_chunk);
  else
    weight_grad_tiles<F2>(x, b, h, w, dy, cout, dw, tiles_per_chunk);
}

}  // namespace dd::kernels::cpu
