#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "autograd/elementwise.h"
#include "autograd/linear.h"
#include "engine/error.h"
#include "kernels/linear.h"
#include "tests/reference/linear.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};
}  // namespace

TEST_CASE("linear forward matches the float64 reference", "[linear]") {
  DD_TEST_RANDOM(rng);
  // (M, K, N), incl. the U-Net's time MLP (B x 28 -> 112) and ResNet time projections.
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1}, {7, 13, 5}, {3, 5, 1}, {1, 9, 11},
                                                      {16, 28, 112}, {64, 112, 256}, {33, 257, 65}};
  for (const auto& s : shapes)
    for (bool with_bias : {true, false}) {
      const int64_t m = s[0], k = s[1], n = s[2];
      std::vector<double> x = rng.normal_f32(m * k), w = rng.normal_f32(n * k, 0.3);
      std::vector<double> b = with_bias ? rng.normal_f32(n) : std::vector<double>{};
      Tensor bt = with_bias ? from_double({n}, b) : Tensor();
      Tensor y = kernels::linear_forward(from_double({m, k}, x), from_double({n, k}, w), bt);
      REQUIRE(y.shape() == Shape({m, n}));
      // fp32 dot products of <= 257 terms vs float64: 1e-5 of the output's scale.
      expect_close(str_cat("linear forward M", m, " K", k, " N", n, with_bias ? " bias" : " no-bias"), y,
                   ref::linear(m, k, n, x, w, b), 1e-5);
    }
}

TEST_CASE("linear gradcheck of x, w and bias", "[linear]") {
  DD_TEST_RANDOM(rng);
  for (bool with_bias : {true, false})
    for (const auto& s : std::vector<std::array<int64_t, 3>>{{3, 5, 4}, {1, 2, 3}, {6, 1, 2}}) {
      const int64_t m = s[0], k = s[1], n = s[2];
      std::vector<double> x = rng.normal_f32(m * k), w = rng.normal_f32(n * k), dy = rng.normal_f32(m * n);
      std::vector<double> b = with_bias ? rng.normal_f32(n) : std::vector<double>{};
      kernels::LinearGrads g = kernels::linear_backward(from_double({m, k}, x), from_double({n, k}, w),
                                                        from_double({m, n}, dy), true, true, with_bias);
      CHECK(g.dbias.defined() == with_bias);
      auto f = [&](const std::vector<std::vector<double>>& v) { return ref::linear(m, k, n, v[0], v[1], v[2]); };
      // fp32 sums of <= 6 products vs float64 central differences: 1e-5.
      gradcheck(str_cat("linear M", m, " K", k, " N", n, with_bias ? " bias" : " no-bias"), f, {x, w, b}, dy,
                {g.dx.to_vector(), g.dw.to_vector(), with_bias ? g.dbias.to_vector() : std::vector<float>{}}, 1e-5);
    }
}

TEST_CASE("linear backward is bitwise deterministic and computes only what is asked", "[linear]") {
  DD_TEST_RANDOM(rng);
  const int64_t m = 512, k = 256, n = 384;  // big enough for Eigen's threaded GEMM
  Tensor x = from_double({m, k}, rng.normal_f32(m * k)), w = from_double({n, k}, rng.normal_f32(n * k));
  Tensor dy = from_double({m, n}, rng.normal_f32(m * n));
  kernels::LinearGrads a = kernels::linear_backward(x, w, dy, true, true, true);
  kernels::LinearGrads b = kernels::linear_backward(x, w, dy, true, true, true);
  CHECK(a.dx.to_vector() == b.dx.to_vector());
  CHECK(a.dw.to_vector() == b.dw.to_vector());
  CHECK(a.dbias.to_vector() == b.dbias.to_vector());
  kernels::LinearGrads none = kernels::linear_backward(x, w, dy, false, false, false);
  CHECK_FALSE(none.dx.defined());
  CHECK_FALSE(none.dw.defined());
  CHECK_FALSE(none.dbias.defined());
}

TEST_CASE("linear's weight gradient, long and short: the float64 value, and it, y and dx the same bits for any thread count",
          "[linear]") {
  DD_TEST_RANDOM(rng);
  // 1700 rows: three of the fixed row ranges (kernels/cpu/linear.cpp); 300 rows: too few to split,
  // so dw's 131 rows go in two fixed blocks. Odd k and n.
  struct Dims {
    int64_t m, k, n;
  };
  for (const Dims& s : {Dims{1700, 37, 29}, Dims{300, 37, 131}}) {
    const int64_t m = s.m, k = s.k, n = s.n;
    const std::vector<double> xv = rng.normal_f32(m * k), gv = rng.normal_f32(m * n);
    const Tensor x = from_double({m, k}, xv), w = from_double({n, k}, rng.normal_f32(n * k)),
                 dy = from_double({m, n}, gv);
    std::vector<double> ref(static_cast<std::size_t>(n * k), 0.0), mag(ref.size(), 0.0);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < k; ++i) {
          const double t = gv[static_cast<std::size_t>(r * n + j)] * xv[static_cast<std::size_t>(r * k + i)];
          ref[static_cast<std::size_t>(j * k + i)] += t;
          mag[static_cast<std::size_t>(j * k + i)] += std::fabs(t);
        }
    // An fp32 sum of m rounded products, in any order: |error| <= (m + 1) u sum |terms| (first
    // order), over max|dw| as expect_close wants.
    double worst = 0.0, top = 0.0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      worst = std::max(worst, mag[i]);
      top = std::max(top, std::fabs(ref[i]));
    }
    const std::vector<float> dw = kernels::linear_backward(x, w, dy, false, true, false).dw.to_vector();
    expect_close("dw", dw, ref, double(m + 1) * std::ldexp(1.0, -24) * worst / top);
    // y and dx in fixed row blocks (4 and 16 of them here): the same bits for any thread count too.
    const Tensor bias = from_double({n}, rng.normal_f32(n));
    const std::vector<float> y = kernels::linear_forward(x, w, bias).to_vector();
    const std::vector<float> dx = kernels::linear_backward(x, w, dy, true, false, false).dx.to_vector();
    const int threads = omp_get_max_threads();
    for (int t : {1, 3}) {
      omp_set_num_threads(t);
      const std::vector<float> dw_t = kernels::linear_backward(x, w, dy, false, true, false).dw.to_vector();
      const std::vector<float> y_t = kernels::linear_forward(x, w, bias).to_vector();
      const std::vector<float> dx_t = kernels::linear_backward(x, w, dy, true, false, false).dx.to_vector();
      omp_set_num_threads(threads);
      CHECK(dw_t == dw);
      CHECK(y_t == y);
      CHECK(dx_t == dx);
    }
  }
}

TEST_CASE("linear errors name the op and the shapes", "[linear]") {
  Tensor x = Tensor::zeros({4, 3});
  REQUIRE_THROWS_WITH(kernels::linear_forward(x, Tensor::zeros({5, 2}), Tensor()),
                      Catch::Contains("linear") && Catch::Contains("[4,3]") && Catch::Contains("[5,2]"));
  REQUIRE_THROWS_WITH(kernels::linear_forward(x, Tensor::zeros({5, 3}), Tensor::zeros({4})),
                      Catch::Contains("linear") && Catch::Contains("bias [4]") && Catch::Contains("[5,3]"));
  REQUIRE_THROWS_WITH(kernels::linear_backward(x, Tensor::zeros({5, 3}), Tensor::zeros({5, 4}), true, true, true),
                      Catch::Contains("linear_backward") && Catch::Contains("[5,4]") && Catch::Contains("[4,3]"));
}

TEST_CASE("autograd linear hands the kernel gradients to x, w and bias", "[linear]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const int64_t m = 3, k = 4, n = 5;
  std::vector<double> xv = rng.normal_f32(m * k), wv = rng.normal_f32(n * k), bv = rng.normal_f32(n),
                      r = rng.normal_f32(m * n);
  ag::Var x(from_double({m, k}, xv), true), w(from_double({n, k}, wv), true), b(from_double({n}, bv), true);
  ag::Var rv(from_double({m, n}, r));
  ag::Tape::current().backward(ag::sum(ag::mul(ag::linear(x, w, b), rv)));
  kernels::LinearGrads g = kernels::linear_backward(x.value(), w.value(), rv.value(), true, true, true);
  CHECK(x.grad().to_vector() == g.dx.to_vector());
  CHECK(w.grad().to_vector() == g.dw.to_vector());
  CHECK(b.grad().to_vector() == g.dbias.to_vector());

  ag::Tape::current().clear();
  ag::Var w2(from_double({n, k}, wv), true);
  ag::Tape::current().backward(ag::sum(ag::mul(ag::linear(ag::Var(x.value()), w2, ag::Var()), rv)));
  CHECK(w2.grad().to_vector() == g.dw.to_vector());
}
