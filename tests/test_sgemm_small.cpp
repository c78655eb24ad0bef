// kernels/cpu/sgemm_small.h, the Winograd convolutions' per-chunk GEMMs, against float64 sums in
// the three forms conv2d_winograd.cpp calls:
//   forward        C = A B, A row-major, B = U^T with U [n x k] row-major, packed by pack_b;
//   backward-data  C = A B, A row-major, B [k x n] row-major, packed by pack_b;
//   backward-weight C += Y^T B, Y [k x m] row-major (A read along its columns), B [k x n] row-major
//                  unpacked (gemm packs it a panel at a time, in blocks along k);
// plus gemm with A row-major, the remaining combination. Strides wider than the matrices, so a read
// or write past an edge shows.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/sgemm_small.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;
namespace sg = dd::kernels::cpu::sgemm;

namespace {
enum class Form { Forward, BackwardData, WeightGrad, RowsUnpacked };

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// C (m x n, row stride ldc) by the form's call; a, b hold the operands in the form's layout.
void run(Form f, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
         int64_t ldc, bool accumulate) {
  switch (f) {
    case Form::Forward: {  // b = U [n x k], row stride ldb
      std::vector<float> bp(static_cast<std::size_t>(sg::packed_b_size(k, n)));
      sg::pack_b(b, 1, ldb, k, n, bp.data());
      sg::gemm_packed(m, n, k, a, lda, 1, bp.data(), c, ldc, accumulate);
      break;
    }
    case Form::BackwardData: {  // b = B [k x n]
      std::vector<float> bp(static_cast<std::size_t>(sg::packed_b_size(k, n)));
      sg::pack_b(b, ldb, 1, k, n, bp.data());
      sg::gemm_packed(m, n, k, a, lda, 1, bp.data(), c, ldc, accumulate);
      break;
    }
    case Form::WeightGrad:  // a = Y [k x m], row stride lda
      sg::gemm(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate);
      break;
    case Form::RowsUnpacked:
      sg::gemm(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate);
      break;
  }
}

double a_at(Form f, const std::vector<float>& a, int64_t lda, int64_t i, int64_t p) {
  return f == Form::WeightGrad ? a[static_cast<std::size_t>(p * lda + i)] : a[static_cast<std::size_t>(i * lda + p)];
}
double b_at(Form f, const std::vector<float>& b, int64_t ldb, int64_t p, int64_t j) {
  return f == Form::Forward ? b[static_cast<std::size_t>(j * ldb + p)] : b[static_cast<std::size_t>(p * ldb + j)];
}

// Checks one call of form f on random operands; returns the largest error over its bound.
double check_shape(Random& rng, Form f, int64_t m, int64_t n, int64_t k, bool accumulate) {
  const int64_t a_rows = f == Form::WeightGrad ? k : m, a_cols = f == Form::WeightGrad ? m : k;
  const int64_t b_rows = f == Form::Forward ? n : k, b_cols = f == Form::Forward ? k : n;
  const int64_t lda = a_cols + 3, ldb = b_cols + 5, ldc = n + 7;
  const std::vector<float> a = to_float(rng.normal_f32(a_rows * lda));
  const std::vector<float> b = to_float(rng.normal_f32(b_rows * ldb));
  const float nan = std::numeric_limits<float>::quiet_NaN(), sentinel = 12345.0f;
  std::vector<float> c0 = to_float(rng.normal_f32(m * ldc));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      float& e = c0[static_cast<std::size_t>(i * ldc + j)];
      if (j >= n)
        e = sentinel;
      else if (!accumulate)
        e = nan;  // overwrite must never read C
    }
  std::vector<float> c = c0;
  run(f, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, accumulate);

  double worst = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = n; j < ldc; ++j) REQUIRE(c[static_cast<std::size_t>(i * ldc + j)] == sentinel);
    for (int64_t j = 0; j < n; ++j) {
      const double init = accumulate ? c0[static_cast<std::size_t>(i * ldc + j)] : 0.0;
      double ref = init, mag = std::fabs(init);
      for (int64_t p = 0; p < k; ++p) {
        const double t = a_at(f, a, lda, i, p) * b_at(f, b, ldb, p, j);
        ref += t;
        mag += std::fabs(t);
      }
      // Recursive fp32 summation of the k products onto C's initial value: one rounding per step
      // with an FMA, two without (a target lacking FMA), so |err| <= gamma_2k (|c0| + sum|a||b|)
      // <= 2 k u (1 + 2 k u) (...) with u = 2^-24; 2 (k + 1) u covers the second-order term for
      // k up to a few hundred. Zero magnitude must give an exact zero.
      const double u = std::ldexp(1.0, -24), bound = 2.0 * static_cast<double>(k + 1) * u * mag;
      const double got = c[static_cast<std::size_t>(i * ldc + j)], err = std::fabs(got - ref);
      REQUIRE(std::isfinite(got));
      if (err > bound) {
        INFO("m " << m << " n " << n << " k " << k << " (" << i << ", " << j << "): got " << got << " want " << ref
                  << " bound " << bound);
        REQUIRE(err <= bound);
      }
      if (bound > 0.0) worst = std::max(worst, err / bound);
    }
  }
  return worst;
}
}  // namespace

TEST_CASE("sgemm_small matches the float64 reference in the three Winograd forms on odd shapes", "[sgemm]") {
  DD_TEST_RANDOM(rng);
  const std::vector<int64_t> sizes = {1, 15, 17, 31, 33, 47, 49};  // tails of 12-row and 32-column tiles
  const Form forms[] = {Form::Forward, Form::BackwardData, Form::WeightGrad, Form::RowsUnpacked};
  double worst = 0.0;
  for (Form f : forms)
    for (bool accumulate : {false, true}) {
      for (int64_t m : sizes)
        for (int64_t n : sizes)
          for (int64_t k : sizes) worst = std::max(worst, check_shape(rng, f, m, n, k, accumulate));
      // The conv's sizes: a chunk of tiles by a few hundred channels, and k past gemm's 256-row
      // blocks along k.
      worst = std::max(worst, check_shape(rng, f, 16, 512, 512, accumulate));
      worst = std::max(worst, check_shape(rng, f, 250, 70, 129, accumulate));
      worst = std::max(worst, check_shape(rng, f, 37, 100, 300, accumulate));
      worst = std::max(worst, check_shape(rng, f, 8, 3, 513, accumulate));
      worst = std::max(worst, check_shape(rng, f, 5, 9, 0, accumulate));  // k = 0: C = 0, or unchanged
    }
  INFO("worst error / bound " << worst);
  CHECK(worst < 1.0);
}

TEST_CASE("sgemm_small sums each element in one fixed order whatever the blocking", "[sgemm]") {
  // C(i, j) must depend only on row i of A, column j of B and k: the same bits whether computed in
  // a whole call, row by row (other row-block heights), from a 33-column slice (other panels),
  // and by gemm (k in blocks) or gemm_packed (k whole). The Winograd convs rely on this for bits
  // that follow only the shapes.
  DD_TEST_RANDOM(rng);
  for (bool accumulate : {false, true}) {
    const int64_t m = 29, n = 70, k = 300;
    const std::vector<float> y = to_float(rng.normal_f32(k * m));  // A = Y^T
    const std::vector<float> b = to_float(rng.normal_f32(k * n));
    const std::vector<float> c0 = to_float(rng.normal_f32(m * n));

    std::vector<float> whole = c0;
    sg::gemm(m, n, k, y.data(), 1, m, b.data(), n, whole.data(), n, accumulate);

    std::vector<float> bp(static_cast<std::size_t>(sg::packed_b_size(k, n)));
    sg::pack_b(b.data(), n, 1, k, n, bp.data());
    std::vector<float> packed = c0;
    sg::gemm_packed(m, n, k, y.data(), 1, m, bp.data(), packed.data(), n, accumulate);
    REQUIRE(std::memcmp(whole.data(), packed.data(), whole.size() * sizeof(float)) == 0);

    std::vector<float> rows = c0;
    for (int64_t i = 0; i < m; ++i)
      sg::gemm(1, n, k, y.data() + i, 1, m, b.data(), n, rows.data() + i * n, n, accumulate);
    REQUIRE(std::memcmp(whole.data(), rows.data(), whole.size() * sizeof(float)) == 0);

    std::vector<float> cols = c0;
    sg::gemm(m, 33, k, y.data(), 1, m, b.data() + 17, n, cols.data() + 17, n, accumulate);
    for (int64_t i = 0; i < m; ++i)
      REQUIRE(std::memcmp(whole.data() + i * n + 17, cols.data() + i * n + 17, 33 * sizeof(float)) == 0);

    // A row-major (the forward's V) against the same products: the same bits again.
    std::vector<float> a(static_cast<std::size_t>(m * k));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p) a[static_cast<std::size_t>(i * k + p)] = y[static_cast<std::size_t>(p * m + i)];
    std::vector<float> by_rows = c0;
    sg::gemm_packed(m, n, k, a.data(), k, 1, bp.data(), by_rows.data(), n, accumulate);
    REQUIRE(std::memcmp(whole.data(), by_rows.data(), whole.size() * sizeof(float)) == 0);
  }
}
