#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "kernels/elementwise.h"
#include "tests/reference/elementwise.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("elementwise ops: forward against float64", "[elementwise]") {
  DD_TEST_RANDOM(rng);
  for (Shape shape : {Shape{1}, Shape{5, 3}, Shape{3, 17, 19, 7}, Shape{2, 64, 64, 33}}) {
    const int64_t n = shape_numel(shape);
    std::vector<double> a = rng.normal_f32(n), b = rng.normal_f32(n);
    Tensor ta = from_double(shape, a), tb = from_double(shape, b);
    INFO("shape " << shape_str(shape));
    // One fp32 rounding per element: 1e-6 of the tensor's scale.
    expect_close("add", kernels::add(ta, tb), ref::add(a, b), 1e-6);
    expect_close("sub", kernels::sub(ta, tb), ref::sub(a, b), 1e-6);
    expect_close("mul", kernels::mul(ta, tb), ref::mul(a, b), 1e-6);
    expect_close("affine", kernels::affine(ta, 0.3f, -2.0f), ref::affine(a, 0.3f, -2.0f), 1e-6);
    Tensor y = ta.clone();
    kernels::axpy_(y, -0.75f, tb);
    std::vector<double> expect(a.size());
    double terms = 0;  // the terms' size: a - 0.75 b can cancel far below it
    for (std::size_t i = 0; i < a.size(); ++i) {
      expect[i] = a[i] - 0.75 * b[i];
      terms = std::max(terms, std::fabs(a[i]) + 0.75 * std::fabs(b[i]));
    }
    // Two roundings (the product, unless fused, and the sum), each within 2^-24 of the terms.
    expect_close("axpy_", y.to_vector(), expect, 1e-6, terms);
    Tensor z = ta.clone();
    kernels::scale_(z, 1.5f);
    expect_close("scale_", z, ref::affine(a, 1.5, 0.0), 1e-6);
    double s = 0, s2 = 0;
    for (double v : a) {
      s += v;
      s2 += v * v;
    }
    // Double accumulation of float inputs: only the summation order differs.
    CHECK(kernels::sum(ta) == Approx(s).margin(1e-9 * n));
    CHECK(kernels::sum_squares(ta) == Approx(s2).epsilon(1e-12));
  }
}

TEST_CASE("elementwise reductions are bitwise deterministic", "[elementwise]") {
  DD_TEST_RANDOM(rng);
  Tensor t = from_double({1 << 20}, rng.normal(1 << 20));
  const double first = kernels::sum(t);
  for (int i = 0; i < 5; ++i) CHECK(kernels::sum(t) == first);
}

TEST_CASE("elementwise ops reject mismatched shapes", "[elementwise]") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  REQUIRE_THROWS_WITH(kernels::add(a, b), Catch::Contains("add") && Catch::Contains("[2,3]") &&
                                              Catch::Contains("[3,2]"));
  REQUIRE_THROWS_WITH(kernels::axpy_(a, 1.0f, b), Catch::Contains("axpy_"));
}
