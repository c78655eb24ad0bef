#include "kernels/cpu/conv2d_winograd.h"

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
// chunk) ran up to 8x slower than im2col on this shared 2-core machine whenever the other
// thread was descheduled. Each output element is computed by exactly one sequence of operations
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

// U[xi][i][o] = (G g G^T)[xi] for g the 3x3 kernel from input channel i to output channel o,
// computed in double and rounded once.
void transform_weights(const float* w, int64_t cin, int64_t cout, bool flip, float* u) {
  const int64_t plane = cin * cout;
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t i = 0; i < cin; ++i)
    for (int64_t o = 0; o < cout; ++o) {
      double g[3][3];
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw)
          g[kh][kw] = flip ? w[((i * 3 + (2 - kh)) * 3 + (2 - kw)) * cout + o] : w[((o * 3 + kh) * 3 + kw) * cin + i];
      double t[4][3];  // G g
      for (int c = 0; c < 3; ++c) {
        t[0][c] = g[0][c];
        t[1][c] = 0.5 * (g[0][c] + g[1][c] + g[2][c]);
        t[2][c] = 0.5 * (g[0][c] - g[1][c] + g[2][c]);
        t[3][c] = g[2][c];
      }
      for (int r = 0; r < 4; ++r) {  // (G g) G^T
        const double v[4] = {t[r][0], 0.5 * (t[r][0] + t[r][1] + t[r][2]), 0.5 * (t[r][0] - t[r][1] + t[r][2]),
                             t[r][2]};
        for (int c = 0; c < 4; ++c) u[(r * 4 + c) * plane + i * cout + o] = static_cast<float>(v[c]);
      }
    }
}

// v[xi * stride + c] = (B^T d B)[xi] for the channel-c 4x4 tile d whose element (r, s) is p[4r+s][c].
// 16 contiguous loads and 16 contiguous stores per channel: vectorised along c.
void input_tile(const float* const* p, int64_t n, int64_t stride, float* __restrict v) {
  for (int64_t c = 0; c < n; ++c) {
    float d[4][4], t[4][4];
    for (int r = 0; r < 4; ++r)
      for (int s = 0; s < 4; ++s) d[r][s] = p[r * 4 + s][c];
    for (int s = 0; s < 4; ++s) {  // B^T d
      t[0][s] = d[0][s] - d[2][s];
      t[1][s] = d[1][s] + d[2][s];
      t[2][s] = d[2][s] - d[1][s];
      t[3][s] = d[1][s] - d[3][s];
    }
    for (int r = 0; r < 4; ++r) {  // (B^T d) B
      v[(r * 4 + 0) * stride + c] = t[r][0] - t[r][2];
      v[(r * 4 + 1) * stride + c] = t[r][1] + t[r][2];
      v[(r * 4 + 2) * stride + c] = t[r][2] - t[r][1];
      v[(r * 4 + 3) * stride + c] = t[r][1] - t[r][3];
    }
  }
}

// q[2i+j][c] = bias[c] + (A^T m A)[i][j] for m[xi] = mm[xi * stride + c].
void output_tile(const float* __restrict mm, int64_t n, int64_t stride, const float* bias, float* const* q) {
  for (int64_t c = 0; c < n; ++c) {
    float m[4][4];
    for (int r = 0; r < 4; ++r)
      for (int s = 0; s < 4; ++s) m[r][s] = mm[(r * 4 + s) * stride + c];
    float t[2][4];
    for (int s = 0; s < 4; ++s) {  // A^T m
      t[0][s] = m[0][s] + m[1][s] + m[2][s];
      t[1][s] = m[1][s] - m[2][s] - m[3][s];
    }
    for (int r = 0; r < 2; ++r) {  // (A^T m) A
      q[r * 2 + 0][c] = bias[c] + (t[r][0] + t[r][1] + t[r][2]);
      q[r * 2 + 1][c] = bias[c] + (t[r][1] - t[r][2] - t[r][3]);
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

bool winograd_is_faster(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  (void)b, (void)h, (void)w, (void)cin, (void)cout;
  return true;  // placeholder until measured
}

bool use_winograd(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  Conv3x3Algo algo = conv3x3_algo();
  if (algo == Conv3x3Algo::Auto) algo = env_algo();
  if (algo != Conv3x3Algo::Auto) return algo == Conv3x3Algo::Winograd;
  return winograd_is_faster(b, h, w, cin, cout);
}

void winograd_conv3x3(const float* x, int64_t b, int64_t h, int64_t w, int64_t cin, const float* wt, int64_t cout,
                      bool flip, const float* bias, float* y, int64_t tiles_per_chunk) {
  const int64_t th_n = (h + 1) / 2, tw_n = (w + 1) / 2, tiles = b * th_n * tw_n;
  const int64_t per = tiles_per_chunk_for(tiles, cin, cout, tiles_per_chunk);
  const int64_t chunks = (tiles + per - 1) / per;
  std::unique_ptr<float[]> u(new float[static_cast<std::size_t>(16 * cin * cout)]);
  transform_weights(wt, cin, cout, flip, u.get());
  // The halo reads this zero row; the dropped outputs of a half tile land in a per-thread sink.
  const std::vector<float> zeros(static_cast<std::size_t>(std::max(cin, cout)), 0.0f);
  const float* bias_row = bias ? bias : zeros.data();

#pragma omp parallel if (chunks > 1)
  {
    std::unique_ptr<float[]> v(new float[static_cast<std::size_t>(16 * per * cin)]);
    std::unique_ptr<float[]> m(new float[static_cast<std::size_t>(16 * per * cout)]);
    std::vector<float> sink(static_cast<std::size_t>(cout));
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t t0 = c * per, n = std::min(per, tiles - t0);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
        const float* p[16];
        for (int r = 0; r < 4; ++r)
          for (int s = 0; s < 4; ++s) {
            const int64_t ih = 2 * th - 1 + r, iw = 2 * tw - 1 + s;
            p[r * 4 + s] = (ih < 0 || ih >= h || iw < 0 || iw >= w) ? zeros.data() : x + ((bi * h + ih) * w + iw) * cin;
          }
        input_tile(p, cin, n * cin, v.get() + t * cin);
      }
      for (int xi = 0; xi < 16; ++xi)
        MatMap(m.get() + xi * n * cout, n, cout).noalias() =
            ConstMatMap(v.get() + xi * n * cin, n, cin) * ConstMatMap(u.get() + xi * cin * cout, cin, cout);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t tile = t0 + t, bi = tile / (th_n * tw_n), th = (tile / tw_n) % th_n, tw = tile % tw_n;
        float* q[4];
        for (int r = 0; r < 2; ++r)
          for (int s = 0; s < 2; ++s) {
            const int64_t oh = 2 * th + r, ow = 2 * tw + s;
            q[r * 2 + s] = (oh < h && ow < w) ? y + ((bi * h + oh) * w + ow) * cout : sink.data();
          }
        output_tile(m.get() + t * cout, cout, n * cout, bias_row, q);
      }
    }
  }
}

}  // namespace dd::kernels::cpu
