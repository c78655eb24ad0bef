#include "kernels/cpu/conv2d_winograd.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/gemm.h"

// F(2x2, 3x3) with Lavin & Gray's matrices (interpolation points 0, 1, -1, infinity):
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
//   U [16][cin][cout]  transformed weights, built once per call (xi = 4 * row + column)
//   V [16][n][cin]     transformed input tiles of a chunk of n tiles
//   M [16][n][cout]    M[xi] = V[xi] U[xi]: 16 independent single-threaded Eigen GEMMs
// The tiles are cut into fixed chunks (their size depends only on the shapes); the chunks run in
// parallel, each on its own thread's V and M buffers: input transform, 16 single-threaded GEMMs
// (Eigen does not thread inside a parallel region), output transform. One barrier per call: a
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

std::atomic<int> g_algo{static_cast<int>(Conv3x3Algo::Auto)};

Conv3x3Algo env_algo() {
  static const Conv3x3Algo algo = [] {
    const char* v = std::getenv("DD_CPU_CONV3X3");
    const std::string s = v ? v : "auto";
    if (s == "im2col") return Conv3x3Algo::Im2col;
    if (s == "winograd") return Conv3x3Algo::Winograd;
    DD_CHECK(s == "auto" || s.empty(), "DD_CPU_CONV3X3='", s, "' must be im2col, winograd or auto");
    return Conv3x3Algo::Auto;
  }();
  return algo;
}

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

// d[(4r + s) * cin + c] = x[bi, 2th - 1 + r, 2tw - 1 + s, c], zero outside the map: per row, the
// in-bounds pixels are one contiguous run of x.
void copy_input_tile(const float* x, int64_t bi, int64_t th, int64_t tw, int64_t h, int64_t w, int64_t cin,
                     float* d) {
  const int64_t iw0 = 2 * tw - 1, s_lo = std::max<int64_t>(0, -iw0), s_hi = std::min<int64_t>(4, w - iw0);
  for (int r = 0; r < 4; ++r) {
    float* row = d + r * 4 * cin;
    const int64_t ih = 2 * th - 1 + r;
    if (ih < 0 || ih >= h) {
      std::fill(row, row + 4 * cin, 0.0f);
      continue;
    }
    std::fill(row, row + s_lo * cin, 0.0f);
    std::memcpy(row + s_lo * cin, x + ((bi * h + ih) * w + iw0 + s_lo) * cin,
                static_cast<std::size_t>((s_hi - s_lo) * cin) * sizeof(float));
    std::fill(row + s_hi * cin, row + 4 * cin, 0.0f);
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

int64_t tiles_per_chunk_for(int64_t tiles, int64_t cin, int64_t cout, int64_t requested) {
  int64_t n = requested;
  if (n <= 0) {
    const int64_t fit = kChunkBytes / (16 * (cin + cout) * int64_t{sizeof(float)});
    n = std::max(kMinTiles, std::min(fit, (tiles + kMinChunks - 1) / kMinChunks));
  }
  return std::max<int64_t>(1, std::min(n, tiles));
}
}  // namespace

void set_conv3x3_algo(Conv3x3Algo algo) { g_algo.store(static_cast<int>(algo)); }
Conv3x3Algo conv3x3_algo() { return static_cast<Conv3x3Algo>(g_algo.load()); }

// Measured 2026-11-27 on this project's 2-core Xeon (AVX-512, native build), shared with another
// engineer's builds, so one thread (OMP_NUM_THREADS=1, 15 repeats, median; with two threads the
// other jobs' time slices swamped the difference):
//   OMP_NUM_THREADS=1 bench_conv2d --cpu --preset fmnist|cifar --only "k3 p1" --repeats 15   (batch 8)
// ms, im2col / Winograd, fwd and bwd-data:
//   fmnist 28x28  32->32   1.33/0.855  1.32/0.814    cifar 32x32  64->64   5.52/3.26  5.27/3.24
//          28x28  64->32   2.88/1.83   2.07/1.30           32x32 128->64  18.1/12.5  21.0/12.7
//          14x14  32->32  0.359/0.231 0.368/0.210          16x16  64->64   1.29/0.803 1.29/0.757
//          14x14  64->64   1.02/0.704 0.976/0.675          16x16 128->128  8.61/4.14  6.61/3.93
//          14x14  96->64   1.66/1.09   1.36/0.947          16x16 192->128  10.1/9.47  10.8/9.19
//          14x14 128->64   2.12/1.45   1.83/1.31           16x16 256->128  11.1/7.01  8.99/6.34
//           7x7   64->64  0.288/0.301 0.266/0.250           8x8 128->128  1.33/1.08  1.21/1.01
//           7x7   64->128 0.490/0.549 0.505/0.463           8x8 256->256  5.62/4.89  5.17/4.52
//           7x7  128->128  1.04/1.03  0.943/0.911           8x8 384->256  10.7/7.05  7.46/6.52
//           7x7  192->128  1.55/1.62   1.37/1.45            8x8 512->256  12.4/9.13  14.6/8.60
//                                                           4x4 256->256  1.37/1.32  1.30/1.29
//                                                           4x4 256->512  2.98/3.13  2.64/4.17
//                                                           4x4 512->512  6.13/5.54  5.25/5.32
//                                                           4x4 768->512  13.2/10.1  7.46/10.3
// and the CPU demo preset (bench_conv2d ... --preset fmnist --dim 16, same settings, two runs):
//   28x28 16->16  0.573/0.461 0.663/0.471 | 0.661/0.491 0.752/0.483
//   14x14 16->16  0.186/0.140 0.181/0.133 | 0.167/0.145 0.199/0.139
//   28x28 32->16  1.11/0.618  0.926/0.552 | 1.31/0.986  1.07/0.706
//    7x7  32->32 0.0958/0.146 0.0927/0.128 | 0.112/0.146 0.119/0.128
//    7x7  64->64  0.345/0.465 0.487/0.314 | 0.362/0.362 0.346/0.353
// Winograd wins 1.1-2x from 8x8 maps up; at 7x7 and 4x4 the two are within noise or im2col wins
// (a 4x4 map is 4 tiles per image, so the weight transform, 16 (ci, co) planes, is not amortised;
// 7x7 computes 8x8 and drops a row and a column). So: maps of 64 pixels or more. Below 16
// channels nothing was measured (the presets' 3x3 convs have 16 and more); those stay on im2col.
bool winograd_is_faster(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  (void)b;  // measured at batch 8; the tile count per image is what the ratio follows
  return h * w >= 64 && std::min(cin, cout) >= 16;
}

bool use_winograd(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  Conv3x3Algo algo = conv3x3_algo();
  if (algo == Conv3x3Algo::Auto) algo = env_algo();
  if (algo != Conv3x3Algo::Auto) return algo == Conv3x3Algo::Winograd;
  return winograd_is_faster(b, h, w, cin, cout);
}

// The weight gradient's rule, measured 2026-11-27 on the same machine the same way (one thread,
// batch 8, `DD_CPU_CONV3X3=im2col|winograd bench_conv2d --cpu --only "k3 p1" --repeats 5`, two
// alternating runs each), GFLOP/s of the direct conv's FLOPs, im2col / Winograd:
//   cifar  32x32 64->64 74-76/103-114   16x16 64->64 75-76/87-96    8x8 128->128 69-81/111-150
//          4x4 256->256 72-74/99-143    4x4 512->512 73-89/98-110   8x8 512->256 53-54/116-134
//          16x16 256->128 80-86/106-144 32x32 128->64 84-102/114-133
//   fmnist 28x28 32->32 58-62/68-80     14x14 64->64 72-85/101-124  7x7 64->64 54-72/68-69
//          7x7 64->128 76-93/71-82      7x7 128->128 85-95/91-94
//   dim 16 28x28 16->16 62/41           14x14 16->16 57/42          7x7 32->32 66/46
// Winograd wins from 32 channels on maps of 64 pixels or more, and on the 4x4 maps from 256
// channels; 16-channel convs and the 7x7 maps (a quarter of each 8x8 tile set dropped) are
// im2col's. Unlike the forward's rule, 4x4 maps qualify: the weight transform runs once per call
// on the summed dU, not per tile.
bool winograd_dw_is_faster(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  (void)b;
  const int64_t c = std::min(cin, cout);
  return c >= 32 && (h * w >= 64 || (h * w >= 16 && c >= 256));
}

bool use_winograd_dw(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  Conv3x3Algo algo = conv3x3_algo();
  if (algo == Conv3x3Algo::Auto) algo = env_algo();
  if (algo != Conv3x3Algo::Auto) return algo == Conv3x3Algo::Winograd;
  return winograd_dw_is_faster(b, h, w, cin, cout);
}

void winograd_conv3x3(const float* x, int64_t b, int64_t h, int64_t w, int64_t cin, const float* wt, int64_t cout,
                      bool flip, const float* bias, float* y, int64_t tiles_per_chunk) {
  const int64_t th_n = (h + 1) / 2, tw_n = (w + 1) / 2, tiles = b * th_n * tw_n;
  const int64_t per = tiles_per_chunk_for(tiles, cin, cout, tiles_per_chunk);
  const int64_t chunks = (tiles + per - 1) / per;
  // Forward: Ut[xi] = U[xi]^T as [cout][cin] (w's OHWI rows are contiguous along cin); flip:
  // U[xi] as [cin][cout] (w's rows are contiguous along cout). Either way the transform reads and
  // writes along a contiguous index, and the GEMM takes the transpose where needed.
  std::unique_ptr<float[]> u(new float[static_cast<std::size_t>(16 * cin * cout)]);
  const int64_t rows = flip ? cin : cout, cols = flip ? cout : cin;
#pragma omp parallel for schedule(static) if (cin * cout > 4096)
  for (int64_t r = 0; r < rows; ++r) transform_weights(wt + r * 9 * cols, cols, cols, flip, u.get() + r * cols, cin * cout);
  const float* bias_row = bias;
  std::vector<float> zero_bias;
  if (!bias) {
    zero_bias.assign(static_cast<std::size_t>(cout), 0.0f);
    bias_row = zero_bias.data();
  }

  // Always an active parallel region, even for one chunk: Eigen would otherwise thread that
  // chunk's GEMMs itself, and the results would then depend on how it splits them.
#pragma omp parallel
  {
    std::unique_ptr<float[]> v(new float[static_cast<std::size_t>(16 * per * cin)]);
    std::unique_ptr<float[]> m(new float[static_cast<std::size_t>(16 * per * cout)]);
    std::unique_ptr<float[]> d(new float[static_cast<std::size_t>(16 * cin)]);  // one input tile
    std::unique_ptr<float[]> q(new float[static_cast<std::size_t>(4 * cout)]);  // one output tile
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t t0 = c * per, n = std::min(per, tiles - t0);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
        copy_input_tile(x, bi, th, tw, h, w, cin, d.get());
        input_tile(d.get(), cin, n * cin, v.get() + t * cin);
      }
      for (int xi = 0; xi < 16; ++xi) {
        MatMap mx(m.get() + xi * n * cout, n, cout);
        const ConstMatMap vx(v.get() + xi * n * cin, n, cin);
        if (flip)
          mx.noalias() = vx * ConstMatMap(u.get() + xi * cin * cout, cin, cout);
        else
          mx.noalias() = vx * ConstMatMap(u.get() + xi * cin * cout, cout, cin).transpose();
      }
      for (int64_t t = 0; t < n; ++t) {
        const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
        output_tile(m.get() + t * cout, cout, n * cout, bias_row, q.get());
        // Odd H or W: the half tile's extra row or column is dropped here.
        const int64_t ncol = std::min<int64_t>(2, w - 2 * tw);
        for (int r = 0; r < 2 && 2 * th + r < h; ++r)
          std::memcpy(y + ((bi * h + 2 * th + r) * w + 2 * tw) * cout, q.get() + r * 2 * cout,
                      static_cast<std::size_t>(ncol * cout) * sizeof(float));
      }
    }
  }
}


// dw [cout, 3, 3, cin] of the 3x3/p1 conv y = conv(x, w): for each of the 16 Winograd points,
// dU[xi] = sum over tiles of Yh[xi]^T V[xi] ([cout x n] x [n x cin] GEMMs), then dw = G^T dU G.
// Part p (a fixed range of tiles; as many parts as there are 64-tile runs, kWeightParts at most)
// sums its tiles chunk by chunk, in order, into its own dU, and the parts are added in part
// order: the result depends only on the shapes and tiles_per_chunk, not on the threads.
// The tiles are this GEMM's reduction: chunks as large as a 4 MB budget allows (short ones, 16
// tiles at 8x8 and batch 8, ran it slower than im2col), and few parts (each costs a 16 x cin x
// cout accumulator and its addition: with 8 parts, 8x8 512->256 at batch 8 took 2x im2col's time).
void winograd_weight_grad3x3(const float* x, int64_t b, int64_t h, int64_t w, int64_t cin, const float* dy,
                             int64_t cout, float* dw, int64_t tiles_per_chunk) {
  constexpr int64_t kWeightParts = 8, kTilesPerPart = 64, kDwChunkBytes = int64_t{4} << 20;
  const int64_t th_n = (h + 1) / 2, tw_n = (w + 1) / 2, tiles = b * th_n * tw_n;
  int64_t per = tiles_per_chunk;
  if (per <= 0) per = std::max(kMinTiles, kDwChunkBytes / (16 * (cin + cout) * int64_t{sizeof(float)}));
  per = std::clamp<int64_t>(per, 1, tiles);
  const int64_t parts = std::clamp<int64_t>(tiles / kTilesPerPart, 1, kWeightParts), plane = cin * cout;
  std::unique_ptr<float[]> du(new float[static_cast<std::size_t>(parts * 16 * plane)]);
  const std::vector<float> zero(static_cast<std::size_t>(cout), 0.0f);

  // A chunk's transforms: tile t0 + t of the chunk into v[xi][t] and yh[xi][t] (n tiles).
  auto transform = [&](int64_t t0, int64_t t, int64_t n, float* v, float* yh, float* d) {
    const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
    copy_input_tile(x, bi, th, tw, h, w, cin, d);
    input_tile(d, cin, n * cin, v + t * cin);
    const float* g[4];
    for (int k = 0; k < 4; ++k) {
      const int64_t oh = 2 * th + k / 2, ow = 2 * tw + k % 2;
      g[k] = oh < h && ow < w ? dy + ((bi * h + oh) * w + ow) * cout : nullptr;
    }
    grad_tile(g, zero.data(), cout, n * cout, yh + t * cout);
  };
  auto accumulate = [&](float* acc, int xi, int64_t n, const float* v, const float* yh) {
    MatMap(acc + xi * plane, cout, cin).noalias() +=
        ConstMatMap(yh + xi * n * cout, n, cout).transpose() * ConstMatMap(v + xi * n * cin, n, cin);
  };
  // Always an active parallel region (see winograd_conv3x3): Eigen stays single-threaded inside.
  if (parts >= omp_get_max_threads()) {
#pragma omp parallel
    {
      std::unique_ptr<float[]> v(new float[static_cast<std::size_t>(16 * per * cin)]);
      std::unique_ptr<float[]> yh(new float[static_cast<std::size_t>(16 * per * cout)]);
      std::unique_ptr<float[]> d(new float[static_cast<std::size_t>(16 * cin)]);
#pragma omp for schedule(static)
      for (int64_t p = 0; p < parts; ++p) {
        float* acc = du.get() + p * 16 * plane;
        std::fill(acc, acc + 16 * plane, 0.0f);
        const int64_t part_end = (p + 1) * tiles / parts;
        for (int64_t t0 = p * tiles / parts; t0 < part_end; t0 += per) {
          const int64_t n = std::min(per, part_end - t0);
          for (int64_t t = 0; t < n; ++t) transform(t0, t, n, v.get(), yh.get(), d.get());
          for (int xi = 0; xi < 16; ++xi) accumulate(acc, xi, n, v.get(), yh.get());
        }
      }
    }
  } else {
    // Fewer parts than threads (the deep levels' few tiles: one part below 128 tiles left a core
    // idle, bench/RESULTS.md's 1- and 2-thread tables): the threads share each chunk, the tiles'
    // transforms split over them, then the 16 GEMMs. Every GEMM is the one the branch above runs,
    // in the same order per dU[xi]: the same bits.
    std::unique_ptr<float[]> v(new float[static_cast<std::size_t>(16 * per * cin)]);
    std::unique_ptr<float[]> yh(new float[static_cast<std::size_t>(16 * per * cout)]);
    std::fill(du.get(), du.get() + parts * 16 * plane, 0.0f);
#pragma omp parallel
    {
      std::unique_ptr<float[]> d(new float[static_cast<std::size_t>(16 * cin)]);
      for (int64_t p = 0; p < parts; ++p) {
        float* acc = du.get() + p * 16 * plane;
        const int64_t part_end = (p + 1) * tiles / parts;
        for (int64_t t0 = p * tiles / parts; t0 < part_end; t0 += per) {
          const int64_t n = std::min(per, part_end - t0);
#pragma omp for schedule(static)
          for (int64_t t = 0; t < n; ++t) transform(t0, t, n, v.get(), yh.get(), d.get());
#pragma omp for schedule(static)
          for (int xi = 0; xi < 16; ++xi) accumulate(acc, xi, n, v.get(), yh.get());
        }
      }
    }
  }
  float* sum = du.get();
  for (int64_t p = 1; p < parts; ++p) {
    const float* src = du.get() + p * 16 * plane;
#pragma omp parallel for simd schedule(static) if (16 * plane > (1 << 16))
    for (int64_t i = 0; i < 16 * plane; ++i) sum[i] += src[i];
  }
  // dU[xi] is [cout][cin]; dw row co holds the taps of every ci: dw[co * 9 * cin + tap * cin + ci].
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t co = 0; co < cout; ++co) transform_weight_grads(sum + co * cin, plane, cin, dw + co * 9 * cin, cin);
}

}  // namespace dd::kernels::cpu
