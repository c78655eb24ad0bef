#include "kernels/cpu/sgemm_small.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/error.h"

namespace dd::kernels::cpu::sgemm {

namespace {
// GCC lowers these to whatever the target has (one zmm with AVX-512, two ymm with AVX2, ...);
// each lane runs the same operations whatever the width.
using vf16 = float __attribute__((vector_size(64)));
constexpr int kV = kNR / 16;  // vectors per row of a panel
static_assert(kNR % 16 == 0, "panels hold whole vectors");

[[gnu::always_inline]] inline vf16 load(const float* p) {
  vf16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store(float* p, vf16 v) { std::memcpy(p, &v, sizeof v); }

// C[R x kNR] (only its first ncols columns exist) = or += A[R x k] times one packed panel.
// kACols: a_rs == 1 (A is a transposed row-major matrix: a(i, p) = a[i + p * lda]); otherwise
// a(i, p) = a[i * lda + p]. R * kV accumulators stay in registers; each step p broadcasts R
// values of A against kV vectors of the panel's row p.
template <int R, bool kACols>
[[gnu::noinline]] void tile(int64_t k, const float* __restrict a, int64_t lda, const float* __restrict b,
                            float* __restrict c, int64_t ldc, int ncols, bool accumulate) {
  vf16 s[R][kV];
  if (ncols == kNR) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) s[r][v] = accumulate ? load(c + r * ldc + 16 * v) : vf16{};
  } else {
    float t[R][kNR] = {};
    if (accumulate)
      for (int r = 0; r < R; ++r) std::memcpy(t[r], c + r * ldc, sizeof(float) * static_cast<std::size_t>(ncols));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) s[r][v] = load(t[r] + 16 * v);
  }
  if constexpr (kACols) {
    for (int64_t p = 0; p < k; ++p) {
      const float* ap = a + p * lda;
      const float* bp = b + p * kNR;
      vf16 bv[kV];
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) bv[v] = load(bp + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const float x = ap[r];
#pragma GCC unroll 4
        for (int v = 0; v < kV; ++v) s[r][v] += x * bv[v];
      }
    }
  } else {
    const float* ar[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) ar[r] = a + r * lda;
    for (int64_t p = 0; p < k; ++p) {
      const float* bp = b + p * kNR;
      vf16 bv[kV];
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) bv[v] = load(bp + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const float x = ar[r][p];
#pragma GCC unroll 4
        for (int v = 0; v < kV; ++v) s[r][v] += x * bv[v];
      }
    }
  }
  if (ncols == kNR) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) store(c + r * ldc + 16 * v, s[r][v]);
  } else {
    float t[R][kNR];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) store(t[r] + 16 * v, s[r][v]);
    for (int r = 0; r < R; ++r) std::memcpy(c + r * ldc, t[r], sizeof(float) * static_cast<std::size_t>(ncols));
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int, bool);

template <bool kACols, int... Rs>
constexpr TileFn pick(int rows, std::integer_sequence<int, Rs...>) {
  constexpr TileFn table[] = {&tile<Rs + 1, kACols>...};
  return table[rows - 1];
}

// The rows of C cut into blocks of at most kMR, of nearly equal height (m = 16: 8 + 8, not
// 12 + 4: below about 8 rows a tile has too few accumulators to hide the FMA latency), and the
// tile function for each; A's layout picked once.
struct RowBlocks {
  RowBlocks(int64_t m_, int64_t a_rs, int64_t a_cs)
      : m(m_), blocks((m_ + kMR - 1) / kMR), cols(a_rs == 1 && a_cs != 1), lda(cols ? a_cs : a_rs),
        step(cols ? 1 : a_rs) {}
  int64_t first(int64_t bi) const { return m * bi / blocks; }
  int rows(int64_t bi) const { return static_cast<int>(first(bi + 1) - first(bi)); }
  TileFn fn(int64_t bi) const {
    return cols ? pick<true>(rows(bi), std::make_integer_sequence<int, kMR>{})
                : pick<false>(rows(bi), std::make_integer_sequence<int, kMR>{});
  }
  int64_t m, blocks;
  bool cols;
  int64_t lda, step;  // step: one row of A further
};

void check_a(int64_t a_rs, int64_t a_cs) {
  DD_CHECK(a_rs == 1 || a_cs == 1, "sgemm: A needs unit stride along rows or columns (strides ", a_rs, ", ", a_cs,
           ")");
}
}  // namespace

void pack_b(const float* b, int64_t rs, int64_t cs, int64_t k, int64_t n, float* dst) {
  for (int64_t j0 = 0; j0 < n; j0 += kNR) {
    const int64_t w = std::min<int64_t>(kNR, n - j0);
    float* panel_dst = dst + j0 * k;
    if (cs == 1) {
      for (int64_t p = 0; p < k; ++p) {
        float* row = panel_dst + p * kNR;
        std::memcpy(row, b + p * rs + j0, sizeof(float) * static_cast<std::size_t>(w));
        std::fill(row + w, row + kNR, 0.0f);
      }
    } else {
      // Column j of B contiguous along p (a transposed row-major matrix): read along it.
      for (int64_t j = 0; j < kNR; ++j)
        for (int64_t p = 0; p < k; ++p) panel_dst[p * kNR + j] = j < w ? b[p * rs + (j0 + j) * cs] : 0.0f;
    }
  }
}

void gemm_packed(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_rs, int64_t a_cs, const float* bp,
                 float* c, int64_t ldc, bool accumulate) {
  check_a(a_rs, a_cs);
  if (m <= 0 || n <= 0) return;
  // Panel-major: a panel (k x kNR floats, 64 KB at k = 512) stays in L1/L2 while every row block
  // of A passes it; A (a chunk's few hundred rows) stays in L2, B streams from memory once.
  const RowBlocks rb(m, a_rs, a_cs);
  for (int64_t j0 = 0; j0 < n; j0 += kNR)
    for (int64_t bi = 0; bi < rb.blocks; ++bi) {
      const int64_t i = rb.first(bi);
      rb.fn(bi)(k, a + i * rb.step, rb.lda, bp + j0 * k, c + i * ldc + j0, ldc,
                static_cast<int>(std::min<int64_t>(kNR, n - j0)), accumulate);
    }
}

void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb,
          float* c, int64_t ldc, bool accumulate) {
  check_a(a_rs, a_cs);
  if (m <= 0 || n <= 0) return;
  // The weight gradient's C (cout x cin, up to 1 MB a point) is summed into over a few dozen
  // tiles: each C tile is read and written once a call, so C's rows are walked in order (row
  // blocks outer, panels inner) for the prefetchers, against all of B packed (k in blocks of kKC
  // rows so it stays in L2; C(i, j) keeps its order along p, a block's partial sum stored and
  // reloaded exactly).
  constexpr int64_t kKC = 256;
  thread_local std::vector<float> buf;
  const int64_t panels = (n + kNR - 1) / kNR;
  buf.resize(static_cast<std::size_t>(std::min(kKC, std::max<int64_t>(k, 1)) * panels * kNR));
  const RowBlocks rb(m, a_rs, a_cs);
  for (int64_t p0 = 0; p0 < std::max<int64_t>(k, 1); p0 += kKC) {
    const int64_t kc = std::min(kKC, k - p0);
    const bool acc = accumulate || p0 > 0;
    pack_b(b + p0 * ldb, ldb, 1, kc, n, buf.data());
    for (int64_t bi = 0; bi < rb.blocks; ++bi) {
      const int64_t i = rb.first(bi);
      const TileFn f = rb.fn(bi);
      for (int64_t q = 0; q < panels; ++q)
        f(kc, a + i * rb.step + p0 * a_cs, rb.lda, buf.data() + q * kc * kNR, c + i * ldc + q * kNR, ldc,
          static_cast<int>(std::min<int64_t>(kNR, n - q * kNR)), acc);
    }
  }
}

}  // namespace dd::kernels::cpu::sgemm
