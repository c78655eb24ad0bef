#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "autograd/elementwise.h"
#include "autograd/upsample.h"
#include "kernels/upsample.h"
#include "tests/reference/upsample.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
}  // namespace

TEST_CASE("upsample2x: forward against nn.Upsample(nearest) in float64", "[upsample]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{3, 1, 13, 5}, Shape{1, 7, 1, 3},
                  Shape{2, 16, 16, 64}}) {
    INFO("x " << shape_str(s));
    std::vector<double> x = rng.normal_f32(shape_numel(s));
    Tensor y = kernels::upsample2x_forward(from_double(s, x));
    REQUIRE(y.shape() == Shape{s[0], 2 * s[1], 2 * s[2], s[3]});
    // Pure copies of float inputs: exact.
    expect_close("upsample2x forward", y, ref::upsample_nearest2x(x, s[0], s[1], s[2], s[3]), 0.0);
  }
}

TEST_CASE("upsample2x: backward gradcheck on tiny shapes", "[upsample]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 1, 3}, Shape{1, 2, 5, 2}}) {
    INFO("x " << shape_str(s));
    const int64_t n = shape_numel(s);
    std::vector<double> x = rng.normal_f32(n);
    std::vector<double> dy = rng.normal_f32(4 * n);
    Tensor dx = kernels::upsample2x_backward(from_double({s[0], 2 * s[1], 2 * s[2], s[3]}, dy));
    REQUIRE(dx.shape() == s);
    // Each dx sums four floats: rounding up to 3u sum|dy| (u = 2^-24), which cancellation can make
    // large next to dx itself. gradcheck judges relative to the largest |dx|: that bound over it,
    // 1e-6 at least. The linear map's finite differences give both sum|dy| (fed |dy|) and dx.
    auto f = [&](const auto& in) { return ref::upsample_nearest2x(in[0], s[0], s[1], s[2], s[3]); };
    std::vector<double> dy_abs = dy;
    for (double& v : dy_abs) v = std::fabs(v);
    const std::vector<double> terms = numeric_grad(f, {x}, dy_abs, 0), exact = numeric_grad(f, {x}, dy, 0);
    double dx_max = 0;
    for (double v : exact) dx_max = std::max(dx_max, std::fabs(v));
    const double terms_max = *std::max_element(terms.begin(), terms.end());
    gradcheck("upsample2x", f, {x}, dy, {dx.to_vector()}, std::max(1e-6, 3 * 0x1p-24 * terms_max / dx_max));
  }
}

TEST_CASE("upsample2x: backward is the adjoint of forward on a U-Net-sized shape", "[upsample]") {
  DD_TEST_RANDOM(rng);
  const Shape s{2, 16, 16, 96};
  std::vector<double> x = rng.normal_f32(shape_numel(s)), dy = rng.normal_f32(4 * shape_numel(s));
  Tensor dx = kernels::upsample2x_backward(from_double({2, 32, 32, 96}, dy));
  // <up(x), dy> = <x, up^T(dy)>; the float dx carries one rounding per element: 1e-6 of the sum's magnitude.
  std::vector<double> up = ref::upsample_nearest2x(x, s[0], s[1], s[2], s[3]);
  double magnitude = 0;
  for (std::size_t i = 0; i < up.size(); ++i) magnitude += std::fabs(up[i] * dy[i]);
  CHECK(dot(x, to_double(dx)) == Approx(dot(up, dy)).margin(1e-6 * magnitude));
}

TEST_CASE("upsample2x: errors name the op and the shape", "[upsample]") {
  REQUIRE_THROWS_WITH(kernels::upsample2x_forward(Tensor::zeros({2, 3, 4})),
                      Catch::Contains("upsample2x") && Catch::Contains("[2,3,4]"));
  REQUIRE_THROWS_WITH(kernels::upsample2x_backward(Tensor::zeros({1, 3, 4, 2})),
                      Catch::Contains("upsample2x_backward") && Catch::Contains("[1,3,4,2]"));
}

TEST_CASE("upsample2x: autograd gradient equals the kernel backward", "[upsample]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Shape s{2, 3, 5, 4};
  ag::Var x(from_double(s, rng.normal_f32(shape_numel(s))), true);
  Tensor r = from_double({2, 6, 10, 4}, rng.normal_f32(4 * shape_numel(s)));
  ag::Var loss = ag::sum(ag::mul(ag::upsample2x(x), ag::Var(r)));
  ag::Tape::current().backward(loss);
  // d loss / d y is r exactly, so the same kernel gives the same bits.
  expect_close("x.grad", x.grad(), kernels::upsample2x_backward(r), 0.0);
}
